"""The demo workload: a realistic mix of calls through an instrumented client, and its summary.

``run_demo`` drives the local simulator (or, with ``live=True``, the real Auriko API) with several
models and routing strategies, a long system prompt that repeats (so the prompt cache hits), streamed
calls, a Responses API call and an embedding. Two more API keys run into the simulator's real limits:
a nightly batch job's key with a tiny daily budget, which its first call spends (its next call gets
``budget_exhausted``), and an agent loop's key with a limit of a few requests a minute, which a burst of
one request more exceeds (``rate_limit_exceeded``). Against the real API all three roles use your key,
whose own budget and limits apply.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LIVE_BASE_URL = "https://api.auriko.ai/v1"

SIM_MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-20250514", "llama-3.3-70b", "deepseek-v3")
LIVE_MODELS = ("gpt-4o-mini", "claude-sonnet-4-20250514")
STRATEGIES = ("cost", "ttft", "tps", "balanced")
TEAMS = ("search", "support", "research")

# The simulator's API keys, by role: the application, a nightly batch job, an agent loop.
SIM_KEYS = {"app": "ak_demo_local", "batch": "ak_demo_batch", "agent": "ak_demo_agent"}
BATCH_BUDGET_USD = 0.001  # the batch key's daily budget: less than one call with the long prompt costs
BATCH_CALLS = 2  # the first spends the budget, the second is refused
AGENT_RPM = 3  # the agent key's own requests-per-minute limit; its burst sends one more
EXTRA_CALLS = 2 + BATCH_CALLS + AGENT_RPM + 1  # beside the chat calls: responses, embeddings, batch, burst

# About 1,400 tokens: long enough for prompt caching (≥ 1,024 tokens) to apply when it repeats.
SYSTEM_PROMPT = "You are a careful analyst for an online bookshop. " + " ".join(
    f"Policy {i}: answer with sourced facts, state uncertainty, keep replies under three sentences, "
    f"and never reveal customer data."
    for i in range(1, 60)
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
    """One call of the workload, made with the API key of ``role`` (a key of ``SIM_KEYS``)."""

    label: str
    run: Callable[[Any], Any]
    role: str = "app"


@dataclass
class DemoResult:
    db_path: str
    calls_made: int
    started_at: Any = None
    errors_seen: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the errors came from, for the summary


def _chat(model: str, strategy: str, question: str, team: str, user: str, stream: bool) -> Callable[[Any], Any]:
    def run(client: Any) -> Any:
        kwargs = dict(
            model=model,
            messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}],
            max_tokens=120,
            extra_body={
                "gateway": {
                    "routing": {"optimize": strategy},
                    "metadata": {"tags": [f"team:{team}", "demo"], "user_id": user},
                }
            },
        )
        if not stream:
            return client.chat.completions.create(**kwargs)
        return "".join(
            (c.choices[0].delta.content or "")
            for c in client.chat.completions.create(stream=True, **kwargs)
            if c.choices
        )

    return run


def workload(calls: int, live: bool) -> list[Step]:
    """Returns the workload's steps, the batch job and the agent's burst in the middle; deterministic."""
    models = LIVE_MODELS if live else SIM_MODELS
    steps = []
    for i in range(calls):
        model = models[i % len(models)]
        strategy = STRATEGIES[(i // len(models)) % len(STRATEGIES)]
        team = TEAMS[i % len(TEAMS)]
        question = QUESTIONS[i % len(QUESTIONS)]
        stream = i % 3 == 2
        steps.append(
            Step(
                f"chat {model} ({strategy}{', stream' if stream else ''})",
                _chat(model, strategy, question, team, f"user-{i % 7}", stream),
            )
        )
    steps.append(
        Step(
            "responses gpt-4o-mini",
            lambda c: c.responses.create(model="gpt-4o-mini", input="List three bestsellers.", max_output_tokens=80),
        )
    )
    steps.append(
        Step(
            "embeddings",
            lambda c: c.embeddings.create(model="text-embedding-3-small", input=["refund policy", "delivery times"]),
        )
    )
    middle = calls // 2
    steps[middle:middle] = _limited_keys(models[0])
    return steps


def _limited_keys(model: str) -> list[Step]:
    """Returns the batch job's calls (its daily budget runs out) and the agent's burst (over its RPM limit)."""
    batch = [
        Step(
            f"batch job {i + 1}/{BATCH_CALLS} (daily budget)",
            _chat(model, "cost", QUESTIONS[i], "batch", "batch-job", False),
            role="batch",
        )
        for i in range(BATCH_CALLS)
    ]
    burst = [
        Step(
            f"agent burst {i + 1}/{AGENT_RPM + 1} ({AGENT_RPM}/min)",
            _chat("gpt-4o-mini", "ttft", QUESTIONS[i % len(QUESTIONS)], "agent", "agent-loop", False),
            role="agent",
        )
        for i in range(AGENT_RPM + 1)
    ]
    return batch + burst


def _limit_keys(sim: Any, clients: dict[str, Any]) -> None:
    """Sets up, as a workspace admin would, the batch key's daily budget and the agent key's RPM limit."""
    key_ids = {role: clients[role].get("/me", cast_to=object)["key_id"] for role in ("batch", "agent")}
    sim.configure(
        budgets=[
            {"scope_type": "api_key", "scope_id": key_ids["batch"], "period": "daily", "limit_usd": BATCH_BUDGET_USD}
        ],
        key_rpm_limits={key_ids["agent"]: AGENT_RPM},
    )


def run_demo(
    db: str,
    *,
    calls: int = 60,
    seed: int = 0,
    live: bool = False,
    on_step: Callable[[str], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> DemoResult:
    """Returns what the demo did after running its workload into the store at ``db``."""
    import openai

    from .instrumentation import flush_store, instrument

    instrument(db=db, service_name="auriko-obs-demo")
    sim = None
    if live:
        key = os.environ.get("AURIKO_API_KEY")
        if not key:
            raise ValueError("--live needs AURIKO_API_KEY in the environment")
        client = openai.OpenAI(base_url=os.environ.get("AURIKO_BASE_URL", LIVE_BASE_URL), api_key=key)
        clients = dict.fromkeys(SIM_KEYS, client)
    else:
        from .simulator import Simulator, SimulatorConfig

        sim = Simulator(SimulatorConfig(seed=seed)).start()
        clients = {
            role: openai.OpenAI(base_url=sim.base_url, api_key=key, max_retries=0) for role, key in SIM_KEYS.items()
        }
    try:
        if sim is not None:
            _limit_keys(sim, clients)
        steps = workload(calls, live)
        if on_total:
            on_total(len(steps))
        from datetime import datetime, timezone

        result = DemoResult(
            db_path=os.path.abspath(db),
            calls_made=0,
            started_at=datetime.now(timezone.utc),
            notes=[_LIVE_NOTE if live else _SIM_NOTE],
        )
        for step in steps:
            try:
                step.run(clients[step.role])
            except openai.APIStatusError as exc:
                code = getattr(exc, "code", None) or str(exc.status_code)
                result.errors_seen[code] = result.errors_seen.get(code, 0) + 1
            result.calls_made += 1
            if on_step:
                on_step(step.label)
        flush_store()  # the summary reads the store; spans for a collector go on at their own pace
        return result
    finally:
        for client in set(clients.values()):
            client.close()
        if sim is not None:
            sim.stop()


_SIM_NOTE = (
    f"The batch job's key has a ${BATCH_BUDGET_USD} daily budget, spent by its first call; the agent's key "
    f"allows {AGENT_RPM} requests a minute, and its burst sends {AGENT_RPM + 1}."
)
_LIVE_NOTE = (
    "Live run: the batch job and the agent's burst use your key, so a budget exhaustion or a rate limit "
    "happens only if your key's own budget or requests-per-minute limit is reached."
)


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
