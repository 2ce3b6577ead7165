"""What every analysis shares: the store argument, the WHERE clause of its filters, periods and dimensions.

User values only ever reach DuckDB as query parameters. Names that must be spliced into SQL (a
dimension, a period) are checked against fixed sets first: the ``llm_calls`` columns of ``fields.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeAlias

from .. import fields
from ..store import Store, parse_time, read_connection

if TYPE_CHECKING:
    import pandas as pd

StoreLike: TypeAlias = "Store | str | os.PathLike[str] | None"
TimeLike: TypeAlias = "datetime | str | None"
Values: TypeAlias = "str | Sequence[str] | None"

NONE_LABEL = "(none)"  # the group of rows whose dimension is NULL (for example calls not routed by Auriko)
OTHER_LABEL = "other"  # what cost_by folds the rows beyond its top N into

# The model a call is about: Auriko's canonical id, else what the caller asked for (non-Auriko endpoints).
MODEL_SQL = "coalesce(model_canonical, request_model)"

PERIODS = ("hour", "day", "week", "month")

# Short names accepted for dimensions, beside the llm_calls column names themselves.
_ALIASES = {"model": MODEL_SQL, "user": "user_id", "service": "service_name"}
_GROUPABLE_TYPES = ("VARCHAR", "BOOLEAN", "INTEGER")
_GROUPABLE = {c.name for c in fields.LLM_CALL_COLUMNS if c.sql_type in _GROUPABLE_TYPES} - {
    "trace_id",
    "span_id",
    "parent_span_id",
    "request_id",
}
DIMENSIONS = tuple(sorted(_GROUPABLE | set(_ALIASES) | {"tag", "tags"}))


def store_of(store: StoreLike) -> Store:
    """Returns ``store`` as a Store: a Store passes through, a path (or None for the default) is opened."""
    return store if isinstance(store, Store) else Store(store)


class Session:
    """One open connection to the store, so that an analysis's several queries open the file once."""

    def __init__(self, con: Any) -> None:
        self.con = con

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(query, list(params or [])).df()


@contextmanager
def session(store: StoreLike | Session) -> Iterator[Session]:
    """Yields a Session over the store (a Session passes through): read-only, spooled rows included, as
    ``Store.sql`` reads. DuckDB runs each aggregation with ``preserve_insertion_order`` off: every query
    here ends in its own ORDER BY, and without the order constraint DuckDB aggregates with less memory."""
    if isinstance(store, Session):
        yield store
        return
    import pandas  # noqa: F401  (DuckDB's .df() needs it; loaded here, not at import)

    target = store_of(store)
    with read_connection(target.path, wait_s=target.lock_wait_s) as con:
        con.execute("SET preserve_insertion_order = false")
        yield Session(con)


def run(store: StoreLike | Session, query: str, params: Sequence[Any]) -> pd.DataFrame:
    """Returns the result of a parameterised query over the store (or an open Session)."""
    if isinstance(store, Session):
        return store.sql(query, params)
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

    def and_(self, clause: str, *params: Any) -> Where:
        return Where([*self.clauses, clause], [*self.params, *params])


def where(
    since: TimeLike = None,
    until: TimeLike = None,
    *,
    model: Values = None,
    provider: Values = None,
    service: Values = None,
    tag: Values = None,
    user: Values = None,
) -> Where:
    """Returns the filter every analysis accepts: start_time in [since, until), and each filter a value or a list.

    ``tag`` keeps calls carrying any of the tags; the others keep calls whose column equals one of the values.
    Raises ValueError when ``since`` is not before ``until`` (the window would hold no call).
    """
    now = datetime.now(timezone.utc)  # one instant for both, so that spans such as "1h" compare exactly
    start, end = parse_time(since, now=now), parse_time(until, now=now)
    if start is not None and end is not None and start >= end:
        raise ValueError(
            f"since ({start.isoformat()}) must be before until ({end.isoformat()}): [since, until) holds no calls"
        )
    clauses: list[str] = []
    params: list[Any] = []
    for op, bound in ((">=", start), ("<", end)):
        if bound is not None:
            clauses.append(f"start_time {op} ?")
            params.append(bound)
    for expr, values in ((MODEL_SQL, model), ("provider", provider), ("service_name", service), ("user_id", user)):
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


# The UTC hour of each call as an integer: the finest period, and cheap to group by (date_trunc on a
# TIMESTAMPTZ goes through the ICU calendar for every row). Every UTC day, week and month starts on an hour.
HOUR_SQL = "epoch_us(start_time) // 3600000000"


def period_of_hour_sql(period: str, hour: str = "_hour") -> str:
    """Returns the SQL of the UTC period start of an integer hour column made by ``HOUR_SQL``."""
    period_sql(period)  # validates
    return f"date_trunc('{period}', to_timestamp({hour} * 3600))"


def raw_dimension_sql(dim: str) -> str:
    """Returns the SQL of a dimension's raw value (tags: the list), to group by before labelling it."""
    if dim in ("tag", "tags"):
        return "tags"
    dimension_sql(dim)  # validates
    return _ALIASES.get(dim, f'"{dim}"')


def label_sql(dim: str, raw: str) -> str:
    """Returns the SQL of a dimension's label from its raw value ``raw`` (made by ``raw_dimension_sql``).

    For tags this is an ``unnest``: one row per (group, tag), ``(none)`` for a call without tags."""
    if dim in ("tag", "tags"):
        return f"unnest(CASE WHEN len({raw}) > 0 THEN {raw} ELSE ['{NONE_LABEL}'] END)"
    return f"coalesce(CAST({raw} AS VARCHAR), '{NONE_LABEL}')"


def grouping(dims: Sequence[str], period: str | None) -> tuple[list[str], list[str], list[str]]:
    """Returns (pre-aggregation keys, their labelled SELECT expressions, output names) for aggregate-first SQL.

    Analyses group the filtered calls by the raw keys first (an integer hour, raw columns, the tags list),
    then label those few groups and sum them up again: per-row work stays minimal."""
    pre = [f"{raw_dimension_sql(d)} AS _d{i}" for i, d in enumerate(dims)]
    labelled = [f'{label_sql(d, f"_d{i}")} AS "{out_name(d)}"' for i, d in enumerate(dims)]
    names = [f'"{out_name(d)}"' for d in dims]
    if period is not None:
        pre.insert(0, f"{HOUR_SQL} AS _hour")
        labelled.insert(0, f"{period_of_hour_sql(period)} AS period_start")
        names.insert(0, "period_start")
    return pre, labelled, names


def leading(items: Sequence[str]) -> str:
    """Returns SQL list items to stand before more of them: ``"a, b, "``, or ``""`` for none (an empty ``by``)."""
    return "".join(f"{item}, " for item in items)


def order_by(names: Sequence[str]) -> str:
    """Returns the ORDER BY clause of output columns, or ``""`` for none (the overall totals are one row)."""
    return f"ORDER BY {', '.join(names)}" if names else ""


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
        return (
            f"(SELECT *, unnest(CASE WHEN len(tags) > 0 THEN tags ELSE ['{NONE_LABEL}'] END) AS tag "
            f"FROM llm_calls WHERE {w.sql})"
        )
    return f"(SELECT * FROM llm_calls WHERE {w.sql})"


def out_name(dim: str) -> str:
    """Returns the output column name of a dimension (``tags`` → ``tag``)."""
    return "tag" if dim == "tags" else dim


def table_exists(store: StoreLike | Session, name: str) -> bool:
    """Returns whether the store has a table (older store files may lack one until a writer migrates them)."""
    frame = run(store, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?", [name])
    return bool(frame["n"].iloc[0])
