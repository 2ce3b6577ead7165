"""What every analysis shares: the store argument, the engine session, the filters, periods and dimensions.

Each analysis is one Ibis expression over the relation ``auriko_obs_calls`` (``llm_calls`` plus the helper
columns of ``store._engines``), compiled for the engine that reads the store: DuckDB (a store file or a lake)
or Apache Spark (a lake). Users' values reach the SQL only as Ibis literals, which Ibis quotes; names that
become columns (a dimension, a period) are checked against fixed sets first: the ``llm_calls`` columns of
``fields.py``. Results come back as Arrow, are cast to the expression's schema and turned into pandas the
way DuckDB does it, so a frame has the same columns and dtypes whichever engine made it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeAlias

from .. import fields
from ..store import CALLS_VIEW, HELPER_COLUMNS, PARTITION_COLUMN, PRICES_COLUMNS, Connection, Store, parse_time

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

StoreLike: TypeAlias = "Store | str | os.PathLike[str] | None"
TimeLike: TypeAlias = "datetime | str | None"
Values: TypeAlias = "str | Sequence[str] | None"

NONE_LABEL = "(none)"  # the group of rows whose dimension is NULL (for example calls not routed by Auriko)
OTHER_LABEL = "other"  # what cost_by folds the rows beyond its top N into

PERIODS = ("hour", "day", "week", "month")
_TRUNCATE_UNITS = {"day": "D", "week": "W", "month": "M"}

# Short names accepted for dimensions, beside the llm_calls column names themselves.
_ALIASES = {"model": "model", "user": "user_id", "service": "service_name"}
_GROUPABLE_TYPES = ("VARCHAR", "BOOLEAN", "INTEGER")
_GROUPABLE = {c.name for c in fields.LLM_CALL_COLUMNS if c.sql_type in _GROUPABLE_TYPES} - {
    "trace_id",
    "span_id",
    "parent_span_id",
    "request_id",
}
DIMENSIONS = tuple(sorted(_GROUPABLE | set(_ALIASES) | {"tag", "tags"}))

_IBIS_TYPES = {
    "VARCHAR": "string",
    "TIMESTAMPTZ": "timestamp('UTC')",
    "DOUBLE": "float64",
    "BIGINT": "int64",
    "INTEGER": "int32",
    "BOOLEAN": "boolean",
    "VARCHAR[]": "array<string>",
    "JSON": "string",
    "DATE": "date",
}


def store_of(store: StoreLike) -> Store:
    """Returns ``store`` as a Store: a Store passes through, a path (or None for the default) is opened."""
    return store if isinstance(store, Store) else Store(store)


def _ibis() -> Any:
    import ibis

    return ibis


class Session:
    """One open engine over the store, so that an analysis's several queries open the file (or list the lake) once.

    ``calls`` and ``prices`` are the Ibis tables the analyses build on; ``run`` executes an expression.
    """

    def __init__(self, con: Connection, engine: str) -> None:
        self.con = con
        self.engine = engine  # duckdb or spark
        self.partitioned = con.partitioned
        ibis = _ibis()
        schema = {c.name: _IBIS_TYPES[c.sql_type] for c in fields.LLM_CALL_COLUMNS}
        schema.update({name: _IBIS_TYPES[sql_type] for name, (_, sql_type) in HELPER_COLUMNS.items()})
        if self.partitioned:
            schema[PARTITION_COLUMN] = "date"
        self.calls = ibis.table(schema, name=CALLS_VIEW)
        self.prices = ibis.table({n: _IBIS_TYPES[t] for n, t in PRICES_COLUMNS}, name="provider_prices")
        if con.dialect == "pyspark":
            ibis.pyspark  # noqa: B018  (loading the backend registers the options its compiler reads)

    def compile(self, expr: ir.Table) -> str:
        """Returns the expression as SQL of this session's engine."""
        return _ibis().to_sql(expr, dialect=self.con.dialect)

    def run(self, expr: ir.Table) -> pd.DataFrame:
        """Returns the rows of an Ibis table expression as a DataFrame typed by the expression's schema."""
        from ibis.expr import operations as ops

        for node in expr.op().find(ops.InMemoryTable):  # small tables worked out in Python
            self.con.register(node.name, node.data.to_pyarrow(node.schema))
        table = self.con.arrow(self.compile(expr))
        return self.con.to_pandas(table.cast(expr.schema().to_pyarrow()))

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Returns the result of a query in the engine's own SQL dialect."""
        return self.con.df(query, params)


@contextmanager
def session(store: StoreLike | Session) -> Iterator[Session]:
    """Yields a Session over the store (a Session passes through): a store file read-only with its spooled rows
    included, as ``Store.sql`` reads. DuckDB runs each aggregation with ``preserve_insertion_order`` off: every
    query here ends in its own ORDER BY, and without the order constraint DuckDB aggregates with less memory."""
    if isinstance(store, Session):
        yield store
        return
    target = store_of(store)
    with target.engine.open() as con:
        if con.dialect == "duckdb":
            con.df("SET preserve_insertion_order = false")
        yield Session(con, target.engine.name)


def _as_list(values: Values) -> list[str] | None:
    if values is None:
        return None
    return [values] if isinstance(values, str) else [str(v) for v in values]


@dataclass(frozen=True)
class Where:
    """The calls an analysis reads: start_time in [since, until), the filters, and any further predicates."""

    since: datetime | None = None
    until: datetime | None = None
    values: dict[str, list[str]] = field(default_factory=dict)  # column or alias → accepted values
    tags: list[str] | None = None
    extra: tuple[Any, ...] = ()  # functions of the calls table returning a boolean column

    def and_(self, predicate: Any) -> Where:
        """Returns this filter narrowed by ``predicate``, a function of the calls table."""
        return Where(self.since, self.until, self.values, self.tags, (*self.extra, predicate))

    def between(self, since: datetime | None, until: datetime | None) -> Where:
        """Returns this filter with start_time also in [since, until) (either may be None)."""
        start = since if self.since is None or (since is not None and since > self.since) else self.since
        end = until if self.until is None or (until is not None and until < self.until) else self.until
        return Where(start, end, self.values, self.tags, self.extra)

    def apply(self, s: Session) -> ir.Table:
        """Returns the session's calls that pass the filter; on a lake, ``since``/``until`` also prune dates."""
        t = s.calls
        predicates = []
        if self.since is not None:
            predicates.append(t.start_time >= self.since)
        if self.until is not None:
            predicates.append(t.start_time < self.until)
        if s.partitioned:
            predicates += _date_predicates(t, self.since, self.until)
        for dim, listed in self.values.items():
            predicates.append(raw_dimension(t, dim).isin(listed))
        if self.tags is not None:
            ibis = _ibis()
            predicates.append(
                ibis.or_(*(t.tags.contains(tag) for tag in self.tags)) if self.tags else ibis.literal(False)
            )
        predicates += [p(t) for p in self.extra]
        return t.filter(*predicates) if predicates else t


def _date_predicates(t: ir.Table, since: datetime | None, until: datetime | None) -> list[Any]:
    """Returns the partition predicates that keep the UTC dates of [since, until)."""
    out = []
    if since is not None:
        out.append(t[PARTITION_COLUMN] >= since.astimezone(timezone.utc).date())
    if until is not None:
        out.append(t[PARTITION_COLUMN] <= (until.astimezone(timezone.utc) - timedelta(microseconds=1)).date())
    return out


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
    values = {}
    for dim, given in (("model", model), ("provider", provider), ("service", service), ("user", user)):
        listed = _as_list(given)
        if listed is not None:
            values[dim] = listed
    return Where(start, end, values, _as_list(tag))


def check_period(period: str | None) -> None:
    """Raises ValueError for a period that is not hour, day, week, month or None."""
    if period is not None and period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)} or None, not {period!r}")


def period_of_hour(hour: Any, period: str) -> Any:
    """Returns the UTC start of the period holding an integer hour (hours since the epoch, as ``start_hour``).

    Grouping by the integer hour first is cheap; only the few groups are then turned into timestamps."""
    check_period(period)
    stamp = (hour * 3600).as_timestamp("s")
    if period != "hour":
        stamp = stamp.truncate(_TRUNCATE_UNITS[period])
    return stamp.cast("timestamp('UTC')")


def check_dimension(dim: str) -> None:
    """Raises ValueError for a name that is neither an ``llm_calls`` column fit for grouping nor an alias."""
    if dim not in DIMENSIONS:
        raise ValueError(f"cannot group by {dim!r}; use one of {', '.join(DIMENSIONS)}")


def model_of(t: ir.Table) -> Any:
    """Returns the model a call is about: Auriko's canonical id, else the requested one (non-Auriko endpoints)."""
    return t.model_canonical.coalesce(t.request_model)


def raw_dimension(t: ir.Table, dim: str) -> Any:
    """Returns a dimension's raw value (tags: the list), to group by before labelling it."""
    check_dimension(dim)
    if dim in ("tag", "tags"):
        return t.tags
    if dim == "model":
        return model_of(t)
    return t[_ALIASES.get(dim, dim)]


def label(raw: Any, dim: str) -> Any:
    """Returns a dimension's label from its raw value: text, ``(none)`` for NULL. For tags this unnests: one row
    per (group, tag), ``(none)`` for a call without tags."""
    ibis = _ibis()
    if dim in ("tag", "tags"):
        none = ibis.literal([NONE_LABEL], type="array<string>")
        return ibis.cases((raw.length() > 0, raw), else_=none).unnest()
    return raw.cast("string").coalesce(NONE_LABEL)


def out_name(dim: str) -> str:
    """Returns the output column name of a dimension (``tags`` → ``tag``)."""
    return "tag" if dim == "tags" else dim


@dataclass(frozen=True)
class Grouping:
    """Aggregate-first grouping: the raw keys to group the calls by, and how to label the few groups after."""

    dims: tuple[str, ...]
    period: str | None

    @property
    def names(self) -> list[str]:
        """Returns the output columns: ``period_start`` (with a period), then one per dimension."""
        return (["period_start"] if self.period else []) + [out_name(d) for d in self.dims]

    def keys(self, t: ir.Table) -> dict[str, Any]:
        """Returns the raw keys (``_hour``, ``_d0``, …) as expressions over the calls ``t``."""
        keys = {"_hour": t.start_hour} if self.period else {}
        keys.update({f"_d{i}": raw_dimension(t, d) for i, d in enumerate(self.dims)})
        return keys

    def labels(self, t: ir.Table) -> dict[str, Any]:
        """Returns the labelled output columns over a table that has the raw keys."""
        out = {"period_start": period_of_hour(t._hour, self.period)} if self.period else {}
        out.update({out_name(d): label(t[f"_d{i}"], d) for i, d in enumerate(self.dims)})
        return out

    def period_totals(self, pre: ir.Table, **sums: str) -> ir.Table:
        """Returns the sums of columns of ``pre`` (grouped by the raw keys) per period, or one row without one.

        Summed before any tag is unnested, so a call counts once: the denominator of a share per tag."""
        head = {"period_start": period_of_hour(pre._hour, self.period)} if self.period else {}
        base = pre.select(**head, **{name: pre[column] for name, column in sums.items()})
        return group_sum(base, list(head), **{name: base[name].sum() for name in sums})

    def with_period_totals(self, t: ir.Table, totals: ir.Table) -> ir.Table:
        """Returns ``t`` with the columns of ``period_totals`` beside each row of its period."""
        return t.inner_join(totals, "period_start") if self.period else t.cross_join(totals)


def grouping(dims: str | Sequence[str], period: str | None) -> Grouping:
    """Returns the Grouping of ``dims`` (one or several dimensions) per ``period``; checks both."""
    listed = (dims,) if isinstance(dims, str) else tuple(dims)
    for dim in listed:
        check_dimension(dim)
    check_period(period)
    return Grouping(listed, period)


def group_sum(t: ir.Table, names: Sequence[str], **aggregates: Any) -> ir.Table:
    """Returns ``t`` aggregated by ``names`` (all rows together when there are none)."""
    return t.group_by(list(names)).aggregate(**aggregates) if names else t.aggregate(**aggregates)


def ordered(t: ir.Table, names: Sequence[str]) -> ir.Table:
    """Returns ``t`` ordered by ``names`` (unchanged without names: the totals are one row)."""
    return t.order_by(list(names)) if names else t
