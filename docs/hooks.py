"""MkDocs build hook: pages that show a table of ``auriko_obs/fields.py`` get it generated at build time.

A page asks for a table with an HTML comment on a line of its own, for example ``<!-- generated: llm_calls -->``
(on GitHub the comment is invisible; on the site it is replaced by the table). Nothing is copied by hand, so
the site shows the columns of the code it was built from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mkdocs.exceptions import PluginError

from auriko_obs import fields


def spans_only_markdown() -> str:
    """Returns the columns that the raw ``spans`` table has beyond ``llm_calls``, as a Markdown table."""
    lines = ["| column | type |", "|---|---|"]
    lines += [f"| {name} | {sql_type} |" for name, sql_type in fields.SPAN_ONLY_COLUMNS]
    return "\n".join(lines)


_HEADER_VALUES = {
    "str": "text",
    "int": "integer",
    "float": "number",
    "bool": "true when the header says `true`",
    "usd": "USD decimal",
    "micro_usd": "microdollars ÷ 1e6 (USD)",
}


def headers_markdown() -> str:
    """Returns the Auriko response headers and the span attribute each is recorded as, as a Markdown table."""
    lines = ["| header | span attribute | value |", "|---|---|---|"]
    lines += [f"| `{h}` | `{attr}` | {_HEADER_VALUES[kind]} |" for h, attr, kind in fields.HEADER_ATTRIBUTES]
    return "\n".join(lines)


def routing_markdown() -> str:
    """Returns the ``routing_metadata`` keys and the span attribute each is recorded as, as a Markdown table."""
    lines = ["| routing_metadata key | span attribute |", "|---|---|"]
    lines += [f"| `{key}` | `{attr}` |" for key, attr in fields.ROUTING_ATTRIBUTES]
    lines += [f"| `cost.{key}` | `{attr}` |" for key, attr in fields.COST_ATTRIBUTES]
    return "\n".join(lines)


def other_attributes_markdown() -> str:
    """Returns the attributes without a column of their own (kept in ``attributes`` JSON), as a Markdown table."""
    lines = ["| span attribute | what it holds |", "|---|---|"]
    lines += [f"| `{attr}` | {source} |" for attr, source in fields.OTHER_ATTRIBUTES]
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {
    "llm_calls": fields.schema_markdown,
    "spans-only": spans_only_markdown,
    "headers": headers_markdown,
    "routing": routing_markdown,
    "other-attributes": other_attributes_markdown,
}
MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.M)


def render(markdown: str) -> str:
    """Returns the page with every ``<!-- generated: NAME -->`` line replaced by the table it names."""

    def table(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise PluginError(f"unknown generated table {name!r} (known: {', '.join(TABLES)})")
        return TABLES[name]()

    return MARKER.sub(table, markdown)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """MkDocs event: fills the page's generated tables."""
    return render(markdown)
