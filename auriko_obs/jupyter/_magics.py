"""The magics: ``%auriko_obs [status|report|sql|budget|footer]`` and ``%%auriko_obs_track NAME``.

Every command parses its arguments with IPython's ``magic_arguments`` and answers ``--help``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import MagicHelpFormatter, argument, magic_arguments, parse_argstring

from .._display import frame_html, frame_text, has_usd_columns, usd
from ._extension import EXPERIMENT_ATTR
from ._summary import mime_bundle

if TYPE_CHECKING:
    from ._extension import Extension

_HELP_FLAGS = ("-h", "--help")


def _wants_help(line: str) -> bool:
    return any(token in _HELP_FLAGS for token in line.split())


@magic_arguments()
def _status(self: Any, line: str) -> None:
    """Shows this session's totals: calls, tokens, cost, cache savings, providers, errors, budgets."""


@magic_arguments()
@argument("--since", default=None, help='only calls started since then: "1h", "7d" or an ISO-8601 time')
@argument(
    "--by",
    default="provider",
    help="group by what the analyses group by (provider, model, "
    "routing_strategy, tag, user, service, notebook_cell, status, …) or experiment, notebook; "
    "default provider",
)
@argument("--session", action="store_true", help="only this session's calls (default: the whole store)")
@argument("--db", default=None, help="another store: a DuckDB file or a lake folder (default: this kernel's store)")
def _report(self: Any, line: str) -> None:
    """Shows spend grouped by a column, as a table and a Plotly figure of cost over time."""


@magic_arguments()
@argument("--db", default=None, help="another store: a DuckDB file or a lake folder (default: this kernel's store)")
@argument("query", nargs="*", help="any SQL over the store: tables spans, view llm_calls")
def _sql(self: Any, line: str) -> None:
    """Returns the result of a SQL query over the store as a DataFrame (``%%auriko_obs sql`` takes the cell)."""


@magic_arguments()
@argument("usd", nargs="?", default=None, help='the session budget in USD, or "off"; no value shows it')
def _budget(self: Any, line: str) -> None:
    """Sets a session budget: a call that would take this session's spend past it is stopped before it is sent.

    The check adds this session's recorded spend, the calls in flight and the call about to be made, each
    estimated at this session's mean cost per call (for that model when seen); the stopped call raises
    SessionBudgetExceeded and is recorded as an error (error_code session_budget_exceeded).
    """


@magic_arguments()
@argument("state", nargs="?", choices=("on", "off"), default=None, help="on or off; no value shows it")
def _footer(self: Any, line: str) -> None:
    """Switches the spend footer shown after each cell that made LLM calls."""


class _PlainHelpFormatter(MagicHelpFormatter):
    """Formats ``--help`` as plain text: magic_arguments writes reStructuredText (for ``%magic?``),
    whose usage prefix adds a second ``%`` to a prog that already has one."""

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = "usage: ") -> None:
        super().add_usage(usage, actions, groups, prefix)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(_plain(text), width, indent)


def _plain(text: str) -> str:
    """Returns reStructuredText without the double backquotes around its inline literals."""
    return text.replace("``", "")


def _parser(func: Callable[..., Any]) -> argparse.ArgumentParser:
    """Returns the argument parser that IPython's ``@magic_arguments`` attached to ``func``."""
    parser: argparse.ArgumentParser = func.parser  # type: ignore[attr-defined]  # set at run time by the decorator
    return parser


def _plain_parser(func: Callable[..., Any], prog: str) -> None:
    _parser(func).prog = prog
    _parser(func).formatter_class = _PlainHelpFormatter


_COMMANDS: dict[str, Callable[..., Any]] = {
    "status": _status,
    "report": _report,
    "sql": _sql,
    "budget": _budget,
    "footer": _footer,
}
_SUMMARIES = {
    name: _plain((_parser(func).description or "").strip().splitlines()[0]) for name, func in _COMMANDS.items()
}
for _name, _func in _COMMANDS.items():
    _plain_parser(_func, f"%auriko_obs {_name}")


def _help(func: Callable[..., Any]) -> str:
    return _parser(func).format_help()


def _top_help() -> str:
    lines = ["usage: %auriko_obs [COMMAND] [--help]", "", "auriko-obs in this kernel. Commands (each takes --help):"]
    for name, summary in _SUMMARIES.items():
        lines.append(f"  {name:<8} {summary}")
    lines += [
        "",
        "Cell magic: %%auriko_obs_track NAME  tags the cell's calls with experiment NAME",
        "(as a line magic, %auriko_obs_track NAME tags the calls the rest of the cell makes).",
    ]
    return "\n".join(lines)


@magics_class
class AurikoObsMagics(Magics):
    """``%auriko_obs`` and ``%%auriko_obs_track``, bound to one Extension."""

    def __init__(self, shell: Any, extension: Extension) -> None:
        super().__init__(shell)
        self.extension = extension

    @line_cell_magic
    def auriko_obs(self, line: str, cell: str | None = None) -> Any:
        """auriko-obs in this kernel: ``%auriko_obs [status|report|sql|budget|footer] [--help]``."""
        command, _, rest = line.strip().partition(" ")
        command = command or "status"
        if command in _HELP_FLAGS:
            print(_top_help())
            return None
        func = _COMMANDS.get(command)
        if func is None:
            raise UsageError(f"unknown command {command!r}; one of {', '.join(_COMMANDS)} (see %auriko_obs --help)")
        rest = rest.strip()
        if (command != "sql" and _wants_help(rest)) or (command == "sql" and rest in _HELP_FLAGS):
            print(_help(func))
            return None
        return getattr(self, f"_{command}")(rest, cell)

    @magic_arguments()
    @argument("name", help="the experiment's name, stored as span attribute auriko.experiment")
    @line_cell_magic
    def auriko_obs_track(self, line: str, cell: str | None = None) -> None:
        """Attributes the cell's calls to a named experiment (``auriko.experiment``).

        The cell runs as any other cell: top-level ``await``, its last value shown, tracebacks with
        source. As a line magic, it tags the calls the rest of the cell makes.
        """
        if _wants_help(line):
            print(_help(self.auriko_obs_track))
            return
        args = parse_argstring(self.auriko_obs_track, line)
        if cell is not None:
            # Only a direct run_cell_magic() call gets here: typed cells are rewritten by track_cell_as_line.
            if self.shell is not None:  # always, for a magic that runs
                self.shell.run_cell(f"%auriko_obs_track {line}\n{cell}")
            return
        run = self.extension.cell
        if run is None:
            raise UsageError("%auriko_obs_track tags the calls of the cell being run; no cell is being run")
        run.attributes[EXPERIMENT_ATTR] = args.name

    # ------------------------------------------------------------------ commands

    def _status(self, rest: str, cell: str | None) -> None:
        parse_argstring(_status, rest)
        ext = self.extension
        summary = ext.summarize_session()
        state = (
            f"store {ext.store_path or '(none)'} · footer {'on' if ext.footer else 'off'} · "
            f"session budget {'none' if ext.budget_usd is None else usd(ext.budget_usd)}"
        )
        if summary is None:
            print(f"auriko-obs · session {ext.session}: {state}")
            return
        bundle = mime_bundle(summary)
        bundle["text/plain"] += "\n" + state
        bundle["text/html"] += f'<div style="font:11px monospace;opacity:.7">{state}</div>'
        _display(bundle, raw=True)

    def _report(self, rest: str, cell: str | None) -> None:
        from ._report import report

        args = parse_argstring(_report, rest)
        ext = self.extension
        store = args.db or ext.store_path
        if store is None:
            raise UsageError("no store: the instrumentation was started with db=False (--db names one)")
        with _usage_errors(ValueError, FileNotFoundError):
            table, figure = report(store, by=args.by, since=args.since, session=ext.session if args.session else None)
        ext.last_report = (table, figure)
        # Plain text too: pandas' own repr cuts the columns to a terminal's width with "...".
        _display({"text/plain": frame_text(table), "text/html": frame_html(table)}, raw=True)
        if figure is not None and _has_rich_frontend(self.shell):
            _display(figure)

    def _sql(self, rest: str, cell: str | None) -> Any:
        import duckdb

        from ..instrumentation import flush_store
        from ..store import Store

        store = self.extension.store_path
        words = rest.split(None, 2)
        if words[:1] == ["--db"]:  # --db PATH first; the query is the rest of the line, or the cell
            if len(words) < 2:
                raise UsageError("--db needs a path: a DuckDB file or a lake folder")
            store, rest = words[1], words[2] if len(words) > 2 else ""
        query = (cell or "").strip() or rest
        if not query:
            raise UsageError("%auriko_obs sql needs a query, e.g. %auriko_obs sql SELECT count(*) FROM llm_calls")
        if store is None:
            raise UsageError("no store: the instrumentation was started with db=False (--db names one)")
        flush_store(10)
        with _usage_errors(duckdb.Error, FileNotFoundError):  # DuckDB's message says what is wrong with the query
            return Store(store).sql(query)

    def _budget(self, rest: str, cell: str | None) -> None:
        args = parse_argstring(_budget, rest)
        ext = self.extension
        if args.usd is not None:
            if args.usd.lower() in ("off", "none"):
                ext.budget_usd = None
            else:
                try:
                    value = float(args.usd.lstrip("$"))
                except ValueError:
                    raise UsageError(f"not an amount in USD: {args.usd!r} (e.g. 5.00, or off)") from None
                if not value > 0 or value == float("inf"):
                    raise UsageError(f"the budget must be a positive amount in USD, not {args.usd!r}")
                ext.budget_usd = value
        spent = ext.ledger.spent_usd
        if ext.budget_usd is None:
            print(f"auriko-obs: no session budget (this session has spent {usd(spent)})")
        else:
            left = max(ext.budget_usd - spent, 0.0)
            print(
                f"auriko-obs: session budget {usd(ext.budget_usd)}; spent {usd(spent)}, {usd(left)} left. "
                f"Calls that would go past it are stopped before they are sent."
            )

    def _footer(self, rest: str, cell: str | None) -> None:
        args = parse_argstring(_footer, rest)
        if args.state is not None:
            self.extension.footer = args.state == "on"
        print(f"auriko-obs: cell footer {'on' if self.extension.footer else 'off'}")


@contextmanager
def _usage_errors(*types: type[Exception]) -> Iterator[None]:
    """Turns these exceptions into a UsageError: IPython shows its first line, with no traceback."""
    try:
        yield
    except types as exc:
        raise UsageError(str(exc).strip().splitlines()[0]) from None


def _display(obj: Any, **kwargs: Any) -> None:
    from IPython.display import display

    display(obj, **kwargs)


def _has_rich_frontend(shell: Any) -> bool:
    # A kernel talks to Jupyter (or VS Code, nbclient): figures render there. A terminal shows text only.
    return getattr(shell, "kernel", None) is not None


_TRACK_CELL = re.compile(r"%%auriko_obs_track(\s|$)")


def track_cell_as_line(lines: list[str]) -> list[str]:
    """Returns the lines of a ``%%auriko_obs_track NAME`` cell with its first line made the line magic.

    IPython runs a cell magic's body inside one synchronous call, where top-level ``await`` cannot
    work (a kernel's event loop is already running) and tracebacks have no source. As the line magic
    ``%auriko_obs_track NAME``, the first line tags the calls of the rest of the cell, which IPython
    then runs as any other cell, with unchanged line numbers. ``--help`` is left to the cell magic,
    which prints it without running the cell.
    """
    if not lines or not _TRACK_CELL.match(lines[0]) or _wants_help(lines[0]):
        return lines
    return [lines[0][1:], *lines[1:]]


_plain_parser(AurikoObsMagics.auriko_obs_track, "%%auriko_obs_track")

# ---------------------------------------------------------------------- registration helpers

_MAGIC_NAMES = (
    ("line", "auriko_obs"),
    ("cell", "auriko_obs"),
    ("line", "auriko_obs_track"),
    ("cell", "auriko_obs_track"),
)


def unregister_magics(shell: Any) -> None:
    """Removes our magics from the shell (IPython has no public call for it)."""
    manager = shell.magics_manager
    for kind, name in _MAGIC_NAMES:
        manager.magics[kind].pop(name, None)
    manager.registry.pop(AurikoObsMagics.__name__, None)


def register_track_transform(shell: Any) -> None:
    """Makes IPython run ``%%auriko_obs_track`` cells as ordinary cells (see track_cell_as_line)."""
    # A line transform, as IPython's own cell_magic, which it must come before: the terminal's check for a
    # complete input runs line transforms only after its "%% waits for a blank line" rule.
    transforms = shell.input_transformer_manager.line_transforms
    if track_cell_as_line not in transforms:
        transforms.insert(0, track_cell_as_line)


def unregister_track_transform(shell: Any) -> None:
    transforms = shell.input_transformer_manager.line_transforms
    if track_cell_as_line in transforms:
        transforms.remove(track_cell_as_line)


# pandas 3 reports DataFrame's module as "pandas", older versions as "pandas.core.frame".
_DATAFRAME_NAMES = (("pandas", "DataFrame"), ("pandas.core.frame", "DataFrame"))


def _dataframe_html(frame: Any) -> str | None:
    if has_usd_columns(frame):
        return frame_html(frame)
    return frame._repr_html_()


def register_dataframe_html(shell: Any) -> None:
    """Shows DataFrames with ``*_usd`` columns as dollars in Jupyter (others as pandas does).

    Registered by type name, so that pandas is not imported for it.
    """
    formatter = shell.display_formatter.formatters["text/html"]
    for module, name in _DATAFRAME_NAMES:
        formatter.for_type_by_name(module, name, _dataframe_html)


def unregister_dataframe_html(shell: Any) -> None:
    formatter = shell.display_formatter.formatters["text/html"]
    for registry in (formatter.deferred_printers, formatter.type_printers):
        for key, printer in list(registry.items()):
            if printer is _dataframe_html:
                registry.pop(key)


__all__ = [
    "AurikoObsMagics",
    "register_dataframe_html",
    "register_track_transform",
    "track_cell_as_line",
    "unregister_dataframe_html",
    "unregister_magics",
    "unregister_track_transform",
]
