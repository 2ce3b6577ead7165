"""The ``auriko-obs`` command: every command is added here, and loaded only when it runs.

Each command is defined beside what it drives: ``_core_commands`` (demo, simulate, sql, schema),
``otlp/_commands`` (collect), ``reports/_commands`` (report, schedule, budget), ``store/_commands`` (lake)
and ``dashboard/_commands`` (dashboard). ``COMMANDS`` below names them with their one-line help, so that
``auriko-obs --help`` imports none of them (``tests/test_cli.py`` checks that the lines match).

Bad input exits 2 with a one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import click

from ._cli_shared import UserError


@dataclass(frozen=True)
class LazyCommand:
    """A command known by where it is defined (``module:attribute``) and by its summary line."""

    target: str
    summary: str  # the command's help up to its first full stop, as ``auriko-obs --help`` lists it

    def load(self) -> click.Command:
        """Returns the command, importing its module."""
        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


COMMANDS = {
    "budget": LazyCommand(
        "auriko_obs.reports._commands:budget", "Budgets: check them against spend (monitoring-plugin exit codes)."
    ),
    "collect": LazyCommand(
        "auriko_obs.otlp._commands:collect",
        "Receive OTLP traces (HTTP, optionally gRPC) from any instrumentation into the store.",
    ),
    "dashboard": LazyCommand(
        "auriko_obs.dashboard._commands:dashboard",
        "Serve the dashboards as local web pages that refresh while spans arrive.",
    ),
    "demo": LazyCommand(
        "auriko_obs._core_commands:demo",
        "Run a realistic mixed workload through an instrumented client and summarise it.",
    ),
    "lake": LazyCommand(
        "auriko_obs.store._commands:lake", "A lake of Parquet files: compact it, drop old days, move a store into it."
    ),
    "report": LazyCommand(
        "auriko_obs.reports._commands:report",
        "Build a spend report for a period and deliver it to a file, a webhook or email.",
    ),
    "schedule": LazyCommand(
        "auriko_obs.reports._commands:schedule",
        "Run scheduled reports until interrupted (a long-running process, e.g. a systemd service).",
    ),
    "schema": LazyCommand("auriko_obs._core_commands:schema", "Print the documented llm_calls schema (Markdown)."),
    "simulate": LazyCommand(
        "auriko_obs._core_commands:simulate", "Serve the local Auriko-compatible simulator until interrupted."
    ),
    "sql": LazyCommand(
        "auriko_obs._core_commands:sql",
        "Run a SQL QUERY over the store (tables spans and llm_calls) and print the result.",
    ),
}


class LazyGroup(click.Group):
    """A click group whose commands are imported only when one of them runs or shows its own help.

    This is the lazy group of click's documentation, except that the group's own help lists the
    commands from their summaries instead of importing every command to ask it.
    """

    def __init__(self, *args: Any, lazy_commands: dict[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_commands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = self.lazy_commands.get(cmd_name)
        return lazy.load() if lazy is not None else super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # As click.Group.format_commands, with a stand-in carrying each summary: click shortens it the same way.
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            lazy = self.lazy_commands.get(name)
            command = click.Command(name, help=lazy.summary) if lazy else super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    name="auriko-obs",
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="auriko-obs", prog_name="auriko-obs")
def app() -> None:
    """Make LLM spend and routing through the Auriko router visible: spans → DuckDB → analyses."""


# click ≥ 8.2 raises this for a bare `auriko-obs`; its message is the whole help, shown as click shows it.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(argv: list[str] | None = None) -> int:
    """Returns the exit code of the ``auriko-obs`` command line."""
    try:
        result = app.main(args=argv, prog_name="auriko-obs", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except _NO_ARGS_IS_HELP as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        print("auriko-obs: aborted", file=sys.stderr)
        return 130
    except click.UsageError as exc:
        print(f"auriko-obs: {exc.format_message()}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"auriko-obs: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug of ours or an unusable environment: one line, unless debugging
        if os.environ.get("AURIKO_OBS_DEBUG"):
            raise
        print(
            f"auriko-obs: error: {type(exc).__name__}: {exc} (set AURIKO_OBS_DEBUG=1 for a traceback)", file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
