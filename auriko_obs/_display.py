"""Returns text and HTML for people: USD amounts, token counts, and DataFrames as HTML tables.

Shared by ``Store._repr_html_``, the Jupyter extension (cell footer, magics) and any DataFrame with
``*_usd`` columns shown while the extension is loaded. pandas is only touched when a frame is rendered.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Callable

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
    """Returns a USD amount for people: "$12.35", "$0.0123", "$0.000042"; "–" when unknown."""
    if _missing(value):
        return "–"
    amount = float(value)
    size = abs(amount)
    if size >= 100 or size == 0:
        return f"${amount:,.2f}"
    if size >= 0.0001:
        return f"${amount:,.4f}"
    return f"${amount:.6f}"


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


def _formatter(column: str, dtype: Any) -> Callable[[Any], str] | None:
    name = column.lower()
    if name == "usd" or name.endswith("_usd"):
        return usd
    if name in ("share", "ratio") or name.endswith(("_share", "_ratio")):
        return percent
    if getattr(dtype, "kind", "") in "iu" or name == "calls" or name.endswith(("_tokens", "_calls")):
        return count
    return None


def has_usd_columns(frame: "pd.DataFrame") -> bool:
    """Returns True when a DataFrame has a column named ``usd`` or ``*_usd``."""
    return any(str(c).lower() == "usd" or str(c).lower().endswith("_usd") for c in frame.columns)


def frame_html(frame: "pd.DataFrame", *, caption: str | None = None, max_rows: int = 60) -> str:
    """Returns a DataFrame as an HTML table: ``*_usd`` columns in dollars, token counts with separators."""
    formatters = {}
    for column, dtype in frame.dtypes.items():
        fmt = _formatter(str(column), dtype)
        if fmt is not None:
            formatters[column] = fmt
    table = frame.to_html(formatters=formatters, max_rows=max_rows, border=0, index=_show_index(frame),
                          classes="auriko-obs", na_rep="–", escape=True)
    if caption:
        table = table.replace(">", f"><caption style=\"text-align:left\">{html.escape(caption)}</caption>", 1)
    return table


def _show_index(frame: "pd.DataFrame") -> bool:
    import pandas as pd

    index = frame.index
    return not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1)
