"""A store whose names were chosen by an attacker: formulas, Slack control sequences, Markdown links, HTML."""

from __future__ import annotations

from tests.spend_history import call, insert_calls, utc

NOW = utc(2026, 11, 25, 9)  # the report covers 2026-11-24
LINK_HTML = '<a href="javascript:alert(1)">clickme</a>'
IMG_HTML = "<img src=x onerror=alert(1)>"
MD_LINK = "[re-authenticate](https://evil.example/login)"
SLACK = "<!channel> <https://evil.example|re-authenticate>"
FORMULAS = ['=HYPERLINK("https://evil.example","x")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd"]
CONTROL = ["\tTAB=1+1", "\rCR=1+1"]
# provider → model, each name hostile in its own way
NAMES = {
    LINK_HTML: MD_LINK,
    SLACK: IMG_HTML,
    FORMULAS[0]: FORMULAS[1],
    FORMULAS[2]: FORMULAS[3],
    CONTROL[0]: CONTROL[1],
    "*bold* _it_ ~gone~ `code`": "a|b\nc",
}


def hostile_store(db_path: str) -> str:
    rows = []
    for i, (provider, model) in enumerate(NAMES.items()):
        rows.append(
            call(
                utc(2026, 11, 24, 6),
                cost_usd=10.0 if provider == SLACK else 1.0 + i,  # the Slack sequence is the top provider
                provider=provider,
                model_canonical=model,
                request_model=model,
                service_name=FORMULAS[i % 4],
                user_id=SLACK if i % 2 else LINK_HTML,
                tags=[MD_LINK, FORMULAS[0]],
            )
        )
    insert_calls(db_path, rows)
    return db_path


def every_name() -> set[str]:
    return set(NAMES) | set(NAMES.values()) | set(FORMULAS) | {SLACK, LINK_HTML, MD_LINK}
