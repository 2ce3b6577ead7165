"""Returns text and HTML for people: USD amounts, token counts, and DataFrames as HTML tables.

Shared by ``Store._repr_html_``, the Jupyter extension (cell footer, magics) and any DataFrame with
``*_usd`` columns shown while the extension is loaded. pandas is only touched when a frame is rendered.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and NaT are not equal to themselves
    except TypeError:
        return True  # pandas.NA: neither equal nor unequal to itself


def usd(value: Any) -> str:
    """Returns a USD amount for people: "$12.35", "$0.0123", "$0.000042", "-$0.000050"; "–" when unknown."""
    if _missing(value):
        return "–"
    amount = float(value)
    size = abs(amount)
    if size >= 100 or size == 0:
        digits = f"{size:,.2f}"
    elif size >= 0.0001:
        digits = f"{size:,.4f}"
    else:
        digits = f"{size:.6f}"
    sign = "-" if amount < 0 and digits.strip("0.,") else ""  # no "-$0.000000" for a rounding residue
    return f"{sign}${digits}"


def count(value: Any) -> str:
    """Returns a whole number with thousands separators ("12,345"); "–" when unknown."""
    if _missing(value):
        return "–"
    return f"{int(value):,}"


def percent(value: Any) -> str:
    """Returns a share (0.257) as "25.7%"; "–" when unknown."""
    if _missing(value):
        return "–"
    return f"{float(value) * 100:.1f}%"


def percent_of_100(value: Any) -> str:
    """Returns a percentage already scaled to 0–100 (25.7) as "25.7%"; "–" when unknown."""
    if _missing(value):
        return "–"
    return f"{float(value):.1f}%"


# Columns by the quantity their name says: shares and probabilities are 0–1, "percent" columns 0–100
# (percent_used, savings_percent), and counts get thousands separators. Other numbers (a year, an id,
# an HTTP status, a rank) are left as they are.
_FRACTIONS = ("share", "ratio", "probability")
_PERCENTS = ("percent",)
_COUNTS = ("calls", "errors", "retries", "count", "tokens")


def _named(name: str, kinds: tuple[str, ...]) -> bool:
    return any(name == k or name.endswith(f"_{k}") or name.startswith(f"{k}_") for k in kinds)


def timestamp(value: Any) -> str:
    """Returns a time to the second, with its zone ("2026-12-01 05:58:03 UTC"); "–" when unknown."""
    if _missing(value):
        return "–"
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _formatter(column: str, dtype: Any) -> Callable[[Any], str] | None:
    name = column.lower()
    if name == "usd" or name.endswith("_usd") or "_usd_per_" in name:  # amounts, and rates such as usd_per_h
        return usd
    if getattr(dtype, "kind", None) == "M":
        return timestamp
    if _named(name, _FRACTIONS):
        return percent
    if _named(name, _PERCENTS):
        return percent_of_100
    if _named(name, _COUNTS):
        return count
    return None


def has_usd_columns(frame: pd.DataFrame) -> bool:
    """Returns True when a DataFrame has a column named ``usd`` or ``*_usd``."""
    return any(str(c).lower() == "usd" or str(c).lower().endswith("_usd") for c in frame.columns)


def _formatters(frame: pd.DataFrame) -> dict[Any, Callable[[Any], str]]:
    formatters = {}
    for column, dtype in frame.dtypes.items():
        fmt = _formatter(str(column), dtype)
        if fmt is not None:
            formatters[column] = fmt
    return formatters


def frame_html(frame: pd.DataFrame, *, caption: str | None = None, max_rows: int = 60) -> str:
    """Returns a DataFrame as an HTML table: ``*_usd`` columns in dollars, shares as percentages, counts
    with separators, times to the second."""
    table = frame.to_html(
        formatters=_formatters(frame),
        max_rows=max_rows,
        border=0,
        index=_show_index(frame),
        classes="auriko-obs",
        na_rep="–",
        escape=True,
    )
    if caption:
        table = table.replace(">", f'><caption style="text-align:left">{html.escape(caption)}</caption>', 1)
    return table


def frame_text(frame: pd.DataFrame) -> str:
    """Returns a DataFrame as plain text, formatted as ``frame_html`` does, every row and column (no "…")."""
    return frame.to_string(formatters=_formatters(frame), index=_show_index(frame), na_rep="–")


def _show_index(frame: pd.DataFrame) -> bool:
    import pandas as pd

    index = frame.index
    return not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1)
