"""Dashboard definitions: TOML files of panels, each a SQL query over the store and a figure type.

A definition (``dashboards/*.toml``; copy one and edit it)::

    title = "LLM spend overview"      # shown at the top of the page
    refresh_seconds = 5               # how often the page asks for new data (default 5)
    columns = 2                       # panels per row (default 2)

    [[panels]]
    title = "Spend per minute, by provider"
    type = "area"                     # indicator, line, area, bar, hbar, pie, scatter, table
    sql = '''
      SELECT date_trunc('minute', start_time) AS minute, provider, sum(cost_usd) AS cost_usd
      FROM llm_calls WHERE start_time >= now() - INTERVAL 1 HOUR GROUP BY ALL ORDER BY 1'''
    x = "minute"                      # column for the x axis (bar, line, area, scatter; labels of a pie)
    y = "cost_usd"                    # column for the y axis (the values of a pie, the number of an indicator)
    color = "provider"                # optional: one series per value of this column
    width = 2                         # optional: columns the panel spans
    prefix = "$"                      # optional: before numbers (indicator, y axis)

Queries run read-only over the ``llm_calls`` view and the ``spans`` table. Without ``x``/``y`` the first
column is x and the second y; a table shows every column.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..plots import PANEL_KINDS as PANEL_TYPES

_KEYS = {"title", "type", "sql", "x", "y", "color", "width", "prefix", "description"}
_Number = TypeVar("_Number", int, float)


class DashboardError(ValueError):
    """A dashboard definition cannot be read or is invalid."""


@dataclass(frozen=True)
class Panel:
    title: str
    type: str
    sql: str
    x: str | None = None
    y: str | None = None
    color: str | None = None
    width: int = 1
    prefix: str = ""
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    name: str  # the file name without .toml: the page is /d/<name>
    title: str
    panels: tuple[Panel, ...]
    refresh_seconds: float = 5.0
    columns: int = 2
    path: str = field(default="", compare=False)


def _toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DashboardError(f"cannot read dashboard {path}: {exc}") from None


def load_dashboard(path: str | os.PathLike[str]) -> Dashboard:
    """Returns the dashboard of one TOML file; raises DashboardError when it is invalid."""
    path = Path(path)
    data = _toml(path)
    raw_panels = data.get("panels")
    if not isinstance(raw_panels, list) or not raw_panels:
        raise DashboardError(f"{path}: needs at least one [[panels]] table")
    panels = []
    for i, raw in enumerate(raw_panels):
        where = f"{path}: panels[{i}]"
        unknown = set(raw) - _KEYS
        if unknown:
            raise DashboardError(
                f"{where}: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(sorted(_KEYS))})"
            )
        if not raw.get("sql") or not raw.get("type"):
            raise DashboardError(f"{where}: needs type and sql")
        if raw["type"] not in PANEL_TYPES:
            raise DashboardError(f"{where}: type must be one of {', '.join(PANEL_TYPES)}, not {raw['type']!r}")
        panels.append(
            Panel(
                title=str(raw.get("title", f"Panel {i + 1}")),
                type=raw["type"],
                sql=str(raw["sql"]),
                x=raw.get("x"),
                y=raw.get("y"),
                color=raw.get("color"),
                width=_positive(raw.get("width", 1), int, f"{where}: width"),
                prefix=str(raw.get("prefix", "")),
                description=str(raw.get("description", "")),
            )
        )
    name = re.sub(r"[^A-Za-z0-9_-]", "-", path.stem)
    return Dashboard(
        name=name,
        title=str(data.get("title", name)),
        panels=tuple(panels),
        refresh_seconds=_positive(data.get("refresh_seconds", 5), float, f"{path}: refresh_seconds"),
        columns=_positive(data.get("columns", 2), int, f"{path}: columns"),
        path=str(path),
    )


def _positive(value: object, kind: type[_Number], what: str) -> _Number:
    """Returns ``value`` as a positive ``kind`` (int or float); raises DashboardError naming ``what`` otherwise."""
    whole = kind is int
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is None or (whole and not isinstance(number, int)) or not number > 0:
        raise DashboardError(f"{what} must be a positive {'whole ' if whole else ''}number, not {value!r}")
    return kind(number)


def dashboards_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Returns the folder of definitions: ``explicit``, $AURIKO_OBS_DASHBOARDS, ./dashboards, or the shipped ones.

    An ``explicit`` folder must hold definitions: serving other dashboards instead would hide the mistake.
    """
    if explicit:
        if not Path(explicit).is_dir():
            raise DashboardError(f"no dashboards folder at {explicit}")
        if not any(Path(explicit).glob("*.toml")):
            raise DashboardError(f"no dashboard definitions (*.toml) in {explicit}")
        return Path(explicit)
    candidates = [
        os.environ.get("AURIKO_OBS_DASHBOARDS"),
        "dashboards",
        Path(__file__).resolve().parents[2] / "dashboards",  # a source checkout
        Path(sys.prefix) / "share" / "auriko-obs" / "dashboards",
    ]  # a wheel install
    for candidate in candidates:
        if candidate and Path(candidate).is_dir() and any(Path(candidate).glob("*.toml")):
            return Path(candidate)
    raise DashboardError("no dashboards folder: pass --dir, or run where ./dashboards/*.toml exist")


def load_dashboards(folder: str | os.PathLike[str] | None = None) -> list[Dashboard]:
    """Returns every dashboard of the folder, sorted by file name."""
    return [load_dashboard(p) for p in sorted(dashboards_dir(folder).glob("*.toml"))]
