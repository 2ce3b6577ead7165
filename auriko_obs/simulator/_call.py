"""One inference request as it moves through the simulator: what was asked, routed, answered and billed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._catalog import Model, Provider
from ._config import SimulatorConfig


@dataclass
class Answer:
    """What the simulated model produced."""

    text: str | None  # message content (plain text or JSON); None for tool calls
    tool_calls: list[dict]  # [{"id", "name", "arguments"}]
    finish_reason: str  # stop | length | tool_calls
    output_tokens: int  # including reasoning tokens
    reasoning_tokens: int


@dataclass
class Call:
    """An inference request being served; fields fill in as the request moves along."""

    endpoint: str  # chat.completions | responses | embeddings
    request_id: str
    started_s: float  # sim clock, epoch seconds
    config: SimulatorConfig  # the knobs as they were when the request arrived
    key_hash: str | None = None
    body: dict = field(default_factory=dict)
    streaming: bool = False
    content_seed: int = 0  # derived from the seed and the request content, never from arrival order
    requested_model: str | None = None
    model: Model | None = None
    provider: Provider | None = None
    strategy: str = "cost-focus"
    candidates_total: int = 0
    candidates_viable: int = 0
    warnings: list[dict] = field(default_factory=list)
    prompt_text: str = ""  # role-tagged prompt, the unit of prompt caching
    input_tokens: int = 0
    embedding_inputs: list[Any] = field(default_factory=list)
    answer: Answer | None = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    cache_savings_usd: float = 0.0
    http_status: int = 200
    error_code: str | None = None

    @property
    def billed(self) -> bool:
        """Returns whether this request was served and charged."""
        return self.http_status == 200 and self.error_code is None

    @property
    def routed_model(self) -> Model:
        """Returns the model the request resolved to; raises RuntimeError before routing (a simulator bug)."""
        if self.model is None:
            raise RuntimeError(f"request {self.request_id} has no model yet")
        return self.model

    @property
    def routed_provider(self) -> Provider:
        """Returns the provider routing chose; raises RuntimeError before routing (a simulator bug)."""
        if self.provider is None:
            raise RuntimeError(f"request {self.request_id} has no provider yet")
        return self.provider

    @property
    def composed_answer(self) -> Answer:
        """Returns what the model answered; raises RuntimeError before the answer is composed (a simulator bug)."""
        if self.answer is None:
            raise RuntimeError(f"request {self.request_id} has no answer yet")
        return self.answer

    @property
    def output_tokens(self) -> int:
        return self.answer.output_tokens if self.answer else 0

    @property
    def reasoning_tokens(self) -> int:
        return self.answer.reasoning_tokens if self.answer else 0

    @property
    def gateway(self) -> dict:
        gateway = self.body.get("gateway")
        return gateway if isinstance(gateway, dict) else {}

    @property
    def request_metadata(self) -> dict:
        """Returns ``gateway.metadata`` (or the [DRIFT] top-level ``auriko_metadata``)."""
        metadata = self.gateway.get("metadata") or self.body.get("auriko_metadata")
        return metadata if isinstance(metadata, dict) else {}
