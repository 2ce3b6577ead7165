"""What every analysis shares: the store argument, the WHERE clause of its filters, periods and dimensions.

User values only ever reach DuckDB as query parameters. Names that must be spliced into SQL (a
dimension, a period) are checked against fixed sets first: the ``llm_calls`` columns of ``fields.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence, Union

from .. import fields
from ..store import Store, parse_time

if TYPE_CHECKING:
    import pandas as pd

StoreLike = Union[Store, str, "os.PathLike[str]", None]
TimeLike = Union[datetime, str, None]
Values = Union[str, Sequence[str], None]

NONE_LABEL = "(none)"  # the group of rows whose dimension is NULL (for example calls not routed by Auriko)
OTHER_LABEL = "other"  # what cost_by folds the rows beyond its top N into

# The model a call is about: Auriko's canonical id, else what the caller asked for (non-Auriko endpoints).
MODEL_SQL = "coalesce(model_canonical, request_model)"

PERIODS = ("hour", "day", "week", "month")

# Short names accepted for dimensions, beside the llm_calls column names themselves.
_ALIASES = {"model": MODEL_SQL, "user": "user_id", "service": "service_name"}
_GROUPABLE_TYPES = ("VARCHAR", "BOOLEAN", "INTEGER")
_GROUPABLE = {c.name for c in fields.LLM_CALL_COLUMNS if c.sql_type in _GROUPABLE_TYPES} - {
    "trace_id", "span_id", "parent_span_id", "request_id"}
DIMENSIONS = tuple(sorted(_GROUPABLE | set(_ALIASES) | {"tag", "tags"}))


def store_of(store: StoreLike) -> Store:
    """Returns ``store`` as a Store: a Store passes through, a path (or None for the default) is opened."""
    return store if isinstance(store, Store) else Store(store)


def run(store: StoreLike, query: str, params: Sequence[Any]) -> "pd.DataFrame":
    """Returns the result of a parameterised query over the store."""
    return store_of(store).sql(query, list(params))


def _as_list(values: Values) -> list[str] | None:
    if values is None:
        return None
    return [values] if isinstance(values, str) else [str(v) for v in values]


@dataclass
class Where:
    """A WHERE clause over ``llm_calls`` and its parameters, built from an analysis's common arguments."""

    clauses: list[str]
    params: list[Any]

    @property
    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"

    def and_(self, clause: str, *params: Any) -> "Where":
        return Where([*self.clauses, clause], [*self.params, *params])


def where(since: TimeLike = None, until: TimeLike = None, *, model: Values = None, provider: Values = None,
          service: Values = None, tag: Values = None, user: Values = None) -> Where:
    """Returns the filter every analysis accepts: start_time in [since, until), and each filter a value or a list.

    ``tag`` keeps calls carrying any of the tags; the others keep calls whose column equals one of the values.
    """
    clauses: list[str] = []
    params: list[Any] = []
    for op, value in ((">=", since), ("<", until)):
        bound = parse_time(value)
        if bound is not None:
            clauses.append(f"start_time {op} ?")
            params.append(bound)
    for expr, values in ((MODEL_SQL, model), ("provider", provider), ("service_name", service),
                         ("user_id", user)):
        listed = _as_list(values)
        if listed is not None:
            clauses.append(f"list_contains(?::VARCHAR[], {expr})")
            params.append(listed)
    tags = _as_list(tag)
    if tags is not None:
        clauses.append("list_has_any(tags, ?::VARCHAR[])")
        params.append(tags)
    return Where(clauses, params)


def period_sql(period: str | None) -> str:
    """Returns the SQL of the UTC period start of each call (``date_trunc``; weeks start on Monday)."""
    if period is None:
        return "NULL::TIMESTAMPTZ"
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)} or None, not {period!r}")
    return f"date_trunc('{period}', start_time)"


def dimension_sql(dim: str) -> str:
    """Returns the SQL of a grouping dimension as VARCHAR, NULL shown as ``(none)``; ``tag`` is handled by callers.

    Raises ValueError for a name that is neither an ``llm_calls`` column fit for grouping nor an alias.
    """
    if dim in ("tag", "tags"):
        return "tag"
    if dim not in DIMENSIONS:
        raise ValueError(f"cannot group by {dim!r}; use one of {', '.join(DIMENSIONS)}")
    expr = _ALIASES.get(dim, f'"{dim}"')
    return f"coalesce(CAST({expr} AS VARCHAR), '{NONE_LABEL}')"


def calls_source(w: Where, dims: Sequence[str]) -> str:
    """Returns a FROM source over the filtered calls; with a ``tag`` dimension, one row per (call, tag).

    A call with several tags then counts once under each of them; a call without tags under ``(none)``.
    """
    if any(d in ("tag", "tags") for d in dims):
        return (f"(SELECT *, unnest(CASE WHEN len(tags) > 0 THEN tags ELSE ['{NONE_LABEL}'] END) AS tag "
                f"FROM llm_calls WHERE {w.sql})")
    return f"(SELECT * FROM llm_calls WHERE {w.sql})"


def out_name(dim: str) -> str:
    """Returns the output column name of a dimension (``tags`` → ``tag``)."""
    return "tag" if dim == "tags" else dim


def table_exists(store: StoreLike, name: str) -> bool:
    """Returns whether the store has a table (older store files may lack one until a writer migrates them)."""
    frame = run(store, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?", [name])
    return bool(frame["n"].iloc[0])
