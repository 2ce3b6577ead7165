"""A local Auriko-compatible server: a real HTTP server speaking the Auriko contract, as
``docs/reference/auriko-contract.md`` describes it.

It stands in for an independent server, so it imports nothing else from auriko_obs (standard library only).

```python
from auriko_obs.simulator import Simulator, SimulatorConfig
with Simulator(SimulatorConfig(seed=1)) as sim:
    client = openai.OpenAI(base_url=sim.base_url, api_key="ak_local", max_retries=0)
    sim.inject("budget_exhausted")      # the next inference request fails like Auriko's budget rejection
    sim.configure(rpm_limit=5)          # knobs change at runtime
    sim.ledger()                        # one entry per inference request: provider, tokens, cost, status
```
Other processes drive it over HTTP: ``GET /_sim/ledger``, ``GET|POST /_sim/config`` (JSON knobs, not the clock),
``POST /_sim/inject`` (``{"code", "count", "mid_stream"}``), ``POST /_sim/reset``. ``serve()`` blocks (the CLI's
``auriko-obs simulate``).

Knobs (``SimulatorConfig``): ``seed``, ``drift`` (older shapes: 402 ``budget_exceeded`` / ``insufficient_quota``,
legacy routing_metadata keys, string warnings), ``openai_mode`` (plain OpenAI: no routing_metadata, credits or
budget headers, no budgets, usage chunk only on ``include_usage``, OpenAI's four-key error envelope),
``latency_ms`` (before every /v1 response), ``chunk_delay_ms`` (between SSE events), ``error_rate_5xx``,
``metadata_fault`` ("missing" | "malformed"), ``rpm_limit``, ``key_rpm_limits`` (``{key_id: rpm}``: a key's own
limit, as ``/v1/me`` reports it), ``budgets``, ``credits_usd``, ``clock``, ``api_key_prefix``.

Endpoints: ``POST /v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings``; ``GET /v1/models[/{id}]``,
``/v1/me``, ``/v1/registry/providers``, ``/v1/registry/models``, ``/v1/directory/models`` (tiers with
``cache_read_price``), ``/v1/workspaces/ws_sim/billing/balance`` and ``/budgets`` (other workspace ids → 404).

Where the contract is silent, the simulator chooses:
- Tokens: ceil(characters / 4) per message text + 4 per message (images 85); embeddings ceil(chars / 4) per
  input. Output tokens = ceil(characters / 4) of the visible answer + reasoning tokens (reasoning models only,
  scaled by ``reasoning_effort``). Prose answers are 12–71 tokens. A cap (``max_completion_tokens``,
  ``max_tokens``, ``max_output_tokens``) truncates the answer, text or tool arguments: finish_reason
  ``length`` (Responses: status ``incomplete``).
- Determinism: answers, token counts and TTFT/throughput jitter derive from the seed and the request body
  (minus ``stream``/``stream_options``), never from arrival order, so a streamed and a plain call of the same
  request say the same thing. The 5xx draw also counts how often that body was seen. Request and response
  ids are random.
- Tools: a tool call when ``tool_choice`` is "required" or names a tool, or (choice "auto") when the last user
  message names tools (all of them are called, unless ``parallel_tool_calls`` is false) or contains the word
  "tool" (the first tool); never when the conversation ends with a tool result unless "required".
- Routing: strategies are range-normalised weighted scores over (mean price, TTFT, throughput):
  pure strategies weigh one metric (ties: TTFT, then throughput), ``*-focus`` 0.6/0.2/0.2, ``balanced``
  thirds, ``custom`` the caller's weights. An explicit ``optimize`` beats a model suffix. ``prefer`` wins when
  eligible. ``mode: fallback`` uses the first model with an eligible provider. ``data_policy`` misses →
  400 ``provider_blocked``. p95 percentiles scale TTFT by 1.6 and throughput by 0.7. Random and injected
  errors are final (server-side fallbacks are assumed exhausted).
- routing_metadata: ``ttft_ms`` on every response, streamed or not (an open question of the contract);
  ``throughput_tps`` when tokens were produced; in a stream it rides on the trailing usage-only chunk. Chat
  choices carry ``native_finish_reason`` (Anthropic-family providers: end_turn, max_tokens, tool_use).
- Caching: per (API key, provider), 512-character (128-token) blocks, chained hashes, five-minute TTL on the
  sim clock refreshed on use. A hit needs ≥ 1,024 shared leading tokens; ``cache_write_tokens`` are the blocks
  beyond the hit (all blocks on first sight) and cost nothing extra. Never on embeddings.
- Budgets: spend is tracked per scope (workspace, each key, each provider) and UTC period whether or not a
  budget exists; an ``api_key`` budget without ``scope_id`` limits each key separately (``scope_id`` is the
  ``key_id`` of ``/v1/me``, ``key_`` + the key hash); ``byok_provider`` counts all traffic to that provider.
  Checks happen after routing; a rejection carries ``Retry-After`` = seconds until the period resets. Budget
  headers show the budgets covering the caller (on /v1/me: workspace and key budgets); when several share a
  period, the most used one. ``insufficient_quota`` carries ``Retry-After: 3600``.
- Errors: ``X-Error-Type`` is the body ``type``; ``X-Error-Retryable`` follows the contract's retry rules
  (rate-limit and server errors except budget_exhausted, insufficient_quota, internal_error …). Injections apply
  to the next authenticated, well-formed, rate-admitted inference requests; a mid-stream injection consumed by a
  non-streaming request fails it outright. Mid-stream errors: chat sends ``data: {"error": …}`` then
  ``[DONE]``; Responses sends a flat ``error`` event and ends (no ``response.failed``). They are not billed.
- Ledger: ``model`` is the requested string (``gateway.models`` joined by commas), ``provider`` the routed one
  even on errors (None before routing); tokens and cost are 0 unless billed; entries also carry ``trace_id``.
- Requests: ``n`` is ignored (always one choice); ``require_parameters`` drops providers that would ignore a
  sent parameter; unknown request fields are accepted silently.
- Responses API: reasoning models emit a ``reasoning`` output item; no ``[DONE]`` after ``response.completed``;
  usage always carries ``input_tokens_details.cache_write_tokens`` (openai 3.x requires it).
  ``GET /v1/models`` without ``endpoint`` lists chat and embedding models, ``chat_completions`` chat models,
  ``responses`` adds the Responses-only ``o3-pro``.
"""

from ._config import SimulatorConfig
from ._simulator import Simulator, serve

__all__ = ["Simulator", "SimulatorConfig", "serve"]
