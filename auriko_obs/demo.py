"""The demo workload: a realistic mix of calls through an instrumented client, and its summary.

``run_demo`` drives the local simulator (or, with ``live=True``, the real Auriko API) with several
models and routing strategies, a long system prompt that repeats (so the prompt cache hits), streamed
calls, a Responses API call, an embedding, one budget exhaustion and one rate limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

LIVE_BASE_URL = "https://api.auriko.ai/v1"

SIM_MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-20250514", "llama-3.3-70b", "deepseek-v3")
LIVE_MODELS = ("gpt-4o-mini", "claude-sonnet-4-20250514")
STRATEGIES = ("cost", "ttft", "tps", "balanced")
TEAMS = ("search", "support", "research")

# About 1,400 tokens: long enough for prompt caching (≥ 1,024 tokens) to apply when it repeats.
SYSTEM_PROMPT = "You are a careful analyst for an online bookshop. " + " ".join(
    f"Policy {i}: answer with sourced facts, state uncertainty, keep replies under three sentences, "
    f"and never reveal customer data." for i in range(1, 60)
)
QUESTIONS = (
    "Which genres sold best last quarter?",
    "Summarise the refund policy for damaged books.",
    "Draft a two-line reply to a late-delivery complaint.",
    "What should we reorder before the holidays?",
    "Explain the loyalty discount in one sentence.",
)


@dataclass
class Step:
    """One call of the workload."""

    label: str
    run: Callable[[Any], Any]
    expect_error: str | None = None


@dataclass
class DemoResult:
    db_path: str
    calls_made: int
    started_at: Any = None
    errors_seen: dict[str, int] = field(default_factory=dict)


def _chat(model: str, strategy: str, question: str, team: str, user: str, stream: bool) -> Callable[[Any], Any]:
    def run(client: Any) -> Any:
        kwargs = dict(
            model=model,
            messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}],
            max_tokens=120,
            extra_body={"gateway": {"routing": {"optimize": strategy},
                                    "metadata": {"tags": [f"team:{team}", "demo"], "user_id": user}}},
        )
        if not stream:
            return client.chat.completions.create(**kwargs)
        return "".join((c.choices[0].delta.content or "") for c in
                       client.chat.completions.create(stream=True, **kwargs) if c.choices)
    return run


def workload(calls: int, live: bool) -> Iterator[Step]:
    """Yields the workload's steps; deterministic for a given number of calls."""
    models = LIVE_MODELS if live else SIM_MODELS
    for i in range(calls):
        model = models[i % len(models)]
        strategy = STRATEGIES[(i // len(models)) % len(STRATEGIES)]
        team = TEAMS[i % len(TEAMS)]
        question = QUESTIONS[i % len(QUESTIONS)]
        stream = i % 3 == 2
        yield Step(f"chat {model} ({strategy}{', stream' if stream else ''})",
                   _chat(model, strategy, question, team, f"user-{i % 7}", stream))
    yield Step("responses gpt-4o-mini", lambda c: c.responses.create(
        model="gpt-4o-mini", input="List three bestsellers.", max_output_tokens=80))
    yield Step("embeddings", lambda c: c.embeddings.create(
        model="text-embedding-3-small", input=["refund policy", "delivery times"]))


def _forced_errors(sim: Any) -> list[Step]:
    """Returns the two failing calls of the simulated run: a rate limit and a budget exhaustion."""
    def rate_limited(client: Any) -> Any:
        sim.inject("rate_limit_exceeded")
        return _chat("gpt-4o-mini", "cost", QUESTIONS[0], "support", "user-1", False)(client)

    def over_budget(client: Any) -> Any:
        sim.inject("budget_exhausted")
        return _chat("gpt-4o", "cost", QUESTIONS[1], "research", "user-2", False)(client)

    return [Step("rate limit", rate_limited, "rate_limit_exceeded"),
            Step("budget exhaustion", over_budget, "budget_exhausted")]


def run_demo(db: str, *, calls: int = 60, seed: int = 0, live: bool = False,
             on_step: Callable[[str], None] | None = None, on_total: Callable[[int], None] | None = None) -> DemoResult:
    """Returns what the demo did after running its workload into the store at ``db``."""
    import openai

    from . import flush
    from .instrumentation import instrument

    instrument(db=db, service_name="auriko-obs-demo")
    sim = None
    if live:
        key = os.environ.get("AURIKO_API_KEY")
        if not key:
            raise ValueError("--live needs AURIKO_API_KEY in the environment")
        client = openai.OpenAI(base_url=os.environ.get("AURIKO_BASE_URL", LIVE_BASE_URL), api_key=key)
    else:
        from .simulator import Simulator, SimulatorConfig

        sim = Simulator(SimulatorConfig(seed=seed)).start()
        client = openai.OpenAI(base_url=sim.base_url, api_key="ak_demo_local", max_retries=0)
    try:
        steps = list(workload(calls, live))
        if sim is not None:
            middle = len(steps) // 2
            steps[middle:middle] = _forced_errors(sim)
        if on_total:
            on_total(len(steps))
        from datetime import datetime, timezone

        result = DemoResult(db_path=os.path.abspath(db), calls_made=0, started_at=datetime.now(timezone.utc))
        for step in steps:
            try:
                step.run(client)
            except openai.APIStatusError as exc:
                code = getattr(exc, "code", None) or str(exc.status_code)
                result.errors_seen[code] = result.errors_seen.get(code, 0) + 1
            result.calls_made += 1
            if on_step:
                on_step(step.label)
        flush()
        return result
    finally:
        client.close()
        if sim is not None:
            sim.stop()


SUMMARY_SQL = """
SELECT coalesce(provider, '(not routed)') AS provider,
       count(*) AS calls,
       count(*) FILTER (WHERE status = 'error') AS errors,
       coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
       coalesce(sum(cached_tokens), 0)::BIGINT AS cached_tokens,
       coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       coalesce(sum(cache_savings_usd), 0) AS cache_savings_usd
FROM llm_calls
WHERE service_name = 'auriko-obs-demo' AND start_time >= ?
GROUP BY ALL
ORDER BY cost_usd DESC
"""
