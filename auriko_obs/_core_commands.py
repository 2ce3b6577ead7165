"""The commands of the core install: ``demo``, ``simulate``, ``sql`` and ``schema``.

Thin: each parses its arguments and calls a library function; what that needs loads when it runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ._cli_shared import UserError, cannot_listen, db_option, readable_db_path, writable_db_path
from .demo import EXTRA_CALLS


@click.command()
@db_option
@click.option(
    "--calls",
    type=click.IntRange(1, 100_000),
    default=60,
    show_default=True,
    help=f"Chat calls in the workload (plus {EXTRA_CALLS} others).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Simulator seed: the same seed gives the same run."
)
@click.option("--live", is_flag=True, help="Send the workload to the real Auriko API (needs AURIKO_API_KEY).")
def demo(db: Path | None, calls: int, seed: int, live: bool) -> None:
    """Run a realistic mixed workload through an instrumented client and summarise it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .demo import SUMMARY_SQL, run_demo
    from .store import Store

    if live and not os.environ.get("AURIKO_API_KEY"):
        raise UserError("--live needs AURIKO_API_KEY in the environment")
    path = writable_db_path(db)
    console = Console(stderr=True)
    target = "the real Auriko API" if live else "the local Auriko simulator"
    console.print(f"Running {calls + EXTRA_CALLS} calls against {target}, storing spans in {path}")
    with Progress(
        TextColumn("{task.description:<44}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("starting", total=None)
        result = run_demo(
            path,
            calls=calls,
            seed=seed,
            live=live,
            on_total=lambda n: progress.update(task, total=n),
            on_step=lambda label: progress.update(task, advance=1, description=label[:44]),
        )
        progress.update(task, description="done")
    frame = Store(path).sql(SUMMARY_SQL, [result.started_at])
    _print_summary(frame, result)


def _print_summary(frame, result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="LLM calls in this run, by provider (tokens; USD)")
    table.add_column("provider", no_wrap=True)
    for column in ("calls", "errors", "input", "cached", "output", "cost $", "saved $"):
        table.add_column(column, justify="right")
    for row in frame.itertuples(index=False):
        table.add_row(
            row.provider,
            f"{row.calls:,}",
            f"{row.errors:,}",
            f"{row.input_tokens:,}",
            f"{row.cached_tokens:,}",
            f"{row.output_tokens:,}",
            f"{row.cost_usd:,.4f}",
            f"{row.cache_savings_usd:,.4f}",
        )
    totals = frame.sum(numeric_only=True)
    table.add_row(
        "total",
        f"{int(totals.get('calls', 0)):,}",
        f"{int(totals.get('errors', 0)):,}",
        f"{int(totals.get('input_tokens', 0)):,}",
        f"{int(totals.get('cached_tokens', 0)):,}",
        f"{int(totals.get('output_tokens', 0)):,}",
        f"{totals.get('cost_usd', 0):,.4f}",
        f"{totals.get('cache_savings_usd', 0):,.4f}",
        style="bold",
    )
    console = Console()
    console.print(table)
    errors = ", ".join(f"{n} × {code}" for code, n in sorted(result.errors_seen.items())) or "none"
    console.print(f"Errors seen by the caller: {errors}")
    for note in result.notes:
        console.print(note)
    console.print(
        f'Query it: auriko-obs sql "SELECT provider, sum(cost_usd) FROM llm_calls GROUP BY 1" --db {result.db_path}'
    )


@click.command()
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8787, show_default=True, help="Port (0 picks a free one)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for reproducible runs.")
@click.option("--drift", is_flag=True, help="Emit the older [DRIFT] shapes (402 budget_exceeded, legacy routing keys).")
@click.option("--openai-mode", is_flag=True, help="Behave like a plain OpenAI server (no routing_metadata).")
@click.option("--latency-ms", type=click.FloatRange(0), default=0.0, help="Added latency per response.")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of requests failing with a 5xx.")
@click.option("--rpm-limit", type=click.IntRange(1), default=None, help="Requests per minute per API key.")
@click.option(
    "--credits-usd", type=click.FloatRange(0), default=100.0, show_default=True, help="Starting credit balance."
)
@click.option("--budget", multiple=True, help="Budget as SCOPE:PERIOD:LIMIT_USD, e.g. workspace:daily:5 (repeatable).")
def simulate(
    port: int,
    host: str,
    seed: int,
    drift: bool,
    openai_mode: bool,
    latency_ms: float,
    error_rate: float,
    rpm_limit: int | None,
    credits_usd: float,
    budget: tuple[str, ...],
) -> None:
    """Serve the local Auriko-compatible simulator until interrupted."""
    from .simulator import SimulatorConfig, serve

    config = SimulatorConfig(
        seed=seed,
        drift=drift,
        openai_mode=openai_mode,
        latency_ms=latency_ms,
        error_rate_5xx=error_rate,
        rpm_limit=rpm_limit,
        credits_usd=credits_usd,
        budgets=[_parse_budget(b) for b in budget],
    )
    try:
        serve(host=host, port=port, config=config, ready=lambda message: print(message, flush=True))
    except OSError as exc:
        raise cannot_listen(host, port, exc) from None


def _parse_budget(text: str) -> dict:
    parts = text.split(":")
    if (
        len(parts) != 3
        or parts[0] not in ("workspace", "api_key", "byok_provider")
        or parts[1] not in ("daily", "weekly", "monthly")
    ):
        raise UserError(
            f"bad --budget {text!r}: use SCOPE:PERIOD:LIMIT_USD, scope workspace|api_key|byok_provider, "
            "period daily|weekly|monthly"
        )
    try:
        limit = float(parts[2])
    except ValueError:
        raise UserError(f"bad --budget {text!r}: the limit must be a number of USD") from None
    return {"scope_type": parts[0], "period": parts[1], "limit_usd": limit, "enforce": True}


@click.command()
@click.argument("query")
@db_option
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def sql(query: str, db: Path | None, output: str) -> None:
    """Run a SQL QUERY over the store (tables spans and llm_calls) and print the result."""
    import duckdb

    from .store import Store

    path = readable_db_path(db)
    try:
        frame = Store(path).sql(query)
    except duckdb.Error as exc:
        raise UserError(f"query failed: {str(exc).splitlines()[0]}") from None
    if output == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif output == "json":
        print(frame.to_json(orient="records", date_format="iso"))
    else:
        with __import__("pandas").option_context("display.max_rows", 200, "display.width", 200):
            print(frame.to_string(index=False))


@click.command()
def schema() -> None:
    """Print the documented llm_calls schema (Markdown)."""
    from . import fields
    from .store import SCHEMA_VERSION

    print(f"Schema version {SCHEMA_VERSION}. llm_calls columns:\n")
    print(fields.schema_markdown())
