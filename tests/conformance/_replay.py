"""Replays the recorded OpenAI calls of ``cassettes/`` through the unchanged openai SDK.

A cassette (VCR's YAML) holds one or more recorded HTTP exchanges. Each becomes one SDK call made the
way the recording's test made it (sync or async, streamed or not, through ``with_raw_response``, a
stream read to its end, closed early or left by an exception), and a mock transport of the SDK's own
HTTP library answers it with the recorded response.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import openai
import yaml

CASSETTES = Path(__file__).parent / "cassettes"
# libyaml's safe loader (PyYAML's wheels bundle it) gives yaml.safe_load's values in a tenth of the time: every
# xdist worker loads the cassettes when it collects this module
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
BASE_URL = "https://api.openai.com/v1"

# openai 3.x is built on httpx2, openai 2.x on httpx
http_lib = import_module("httpx2" if find_spec("httpx2") else "httpx")


@dataclass(frozen=True)
class Exchange:
    """One recorded HTTP exchange."""

    path: str  # /chat/completions, /embeddings, /responses
    body: dict[str, Any]
    status: int
    headers: list[tuple[str, str]]
    content: bytes


@dataclass(frozen=True)
class Call:
    """One recorded call to replay: the cassette, which exchange, and how its caller read the answer."""

    cassette: str
    index: int
    exchange: Exchange
    is_async: bool
    shape: str  # call, raw, raw_stream, drain, with_drain, close_after_2, close_unread, with_raise

    @property
    def id(self) -> str:
        return f"{self.cassette}#{self.index}"

    @property
    def streaming(self) -> bool:
        return self.exchange.body.get("stream") is True


@dataclass
class Outcome:
    """What the caller saw, and when its last read of a stream started and returned (time_ns)."""

    error: BaseException | None = None
    chunks: int = 0
    last_read_started_ns: int = 0
    finished_ns: int = 0
    raised: list[BaseException] = field(default_factory=list)


def _shape(name: str, streaming: bool) -> str:
    if "with_raw_response" in name:
        return "raw_stream" if streaming else "raw"
    if not streaming:
        return "call"
    for marker, shape in (
        ("streaming_not_complete", "close_after_2"),
        ("delegates_response_attribute", "close_unread"),
        ("streaming_user_exception", "with_raise"),
        ("context_manager", "with_drain"),
    ):
        if marker in name:
            return shape
    return "drain"


def load_calls() -> list[Call]:
    """Returns every recorded call of every cassette, in file order."""
    calls = []
    for path in sorted(CASSETTES.glob("*.yaml")):
        recorded = yaml.load(path.read_text(), Loader=SAFE_LOADER)
        for index, interaction in enumerate(recorded["interactions"]):
            request, response = interaction["request"], interaction["response"]
            headers = [(k, v) for k, values in response["headers"].items() for v in _as_list(values)]
            exchange = Exchange(
                path=request["uri"].split("/v1", 1)[1],
                body=json.loads(request["body"]) if request["body"] else {},
                status=response["status"]["code"],
                headers=[(k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")],
                content=response["body"]["string"].encode(),
            )
            is_async = path.stem.startswith("test_async")
            calls.append(
                Call(path.stem, index, exchange, is_async, _shape(path.stem, exchange.body.get("stream") is True))
            )
    return calls


def _as_list(values: Any) -> list[str]:
    return [str(v) for v in values] if isinstance(values, list) else [str(values)]


def _handler(exchanges: list[Exchange]) -> Any:
    pending = list(exchanges)

    def handle(request: Any) -> Any:
        exchange = pending.pop(0)
        assert request.url.path == "/v1" + exchange.path, (request.url.path, exchange.path)
        return http_lib.Response(exchange.status, headers=exchange.headers, content=exchange.content)

    return handle


def client(call: Call) -> Any:
    """Returns an SDK client whose transport answers with the call's recorded response."""
    transport = http_lib.MockTransport(_handler([call.exchange]))
    if call.is_async:
        return openai.AsyncOpenAI(
            base_url=BASE_URL, api_key="test", max_retries=0, http_client=http_lib.AsyncClient(transport=transport)
        )
    return openai.OpenAI(
        base_url=BASE_URL, api_key="test", max_retries=0, http_client=http_lib.Client(transport=transport)
    )


def _method(sdk: Any, call: Call, raw: bool) -> Any:
    resource = {"/chat/completions": sdk.chat.completions, "/embeddings": sdk.embeddings, "/responses": sdk.responses}[
        call.exchange.path
    ]
    return (resource.with_raw_response if raw else resource).create


class CallerError(ValueError):
    """Raised by the replayed caller's own code inside its ``with`` block."""


def replay(call: Call) -> Outcome:
    """Returns what the caller saw after making the recorded call."""
    if call.is_async:
        return asyncio.run(_replay_async(call))
    outcome = Outcome()
    sdk = client(call)
    kwargs = dict(call.exchange.body)
    try:
        result = _method(sdk, call, call.shape.startswith("raw"))(**kwargs)
        if call.shape == "raw":
            result.parse()
        elif call.shape == "raw_stream":
            _read(result.parse(), outcome)
        elif call.shape == "drain":
            _read(result, outcome)
        elif call.shape == "with_drain":
            with result as stream:
                _read(stream, outcome, close=False)
        elif call.shape == "close_after_2":
            _read(result, outcome, limit=2)
        elif call.shape == "close_unread":
            _read(result, outcome, limit=0)
        elif call.shape == "with_raise":
            try:
                with result as stream:
                    for _ in stream:
                        outcome.last_read_started_ns = time.time_ns()
                        raise CallerError("the caller's own code failed")
            except CallerError as exc:
                outcome.raised.append(exc)
            outcome.finished_ns = time.time_ns()
    except openai.APIError as exc:
        outcome.error = exc
    finally:
        sdk.close()
    return outcome


def _read(stream: Any, outcome: Outcome, *, limit: int | None = None, close: bool = True) -> None:
    iterator = iter(stream)
    while limit is None or outcome.chunks < limit:
        outcome.last_read_started_ns = time.time_ns()
        try:
            next(iterator)
        except StopIteration:
            break
        outcome.chunks += 1
    if limit is not None and close:
        outcome.last_read_started_ns = time.time_ns()
        stream.close()
    outcome.finished_ns = time.time_ns()


async def _replay_async(call: Call) -> Outcome:
    outcome = Outcome()
    sdk = client(call)
    kwargs = dict(call.exchange.body)
    try:
        result = await _method(sdk, call, call.shape.startswith("raw"))(**kwargs)
        if call.shape == "call":
            pass
        elif call.shape == "raw":
            result.parse()
        elif call.shape == "raw_stream":
            await _aread(result.parse(), outcome)
        elif call.shape == "drain":
            await _aread(result, outcome)
        elif call.shape == "close_after_2":
            await _aread(result, outcome, limit=2)
        else:
            raise AssertionError(f"no async replay for {call.shape}")
    except openai.APIError as exc:
        outcome.error = exc
    finally:
        await sdk.close()
    return outcome


async def _aread(stream: Any, outcome: Outcome, *, limit: int | None = None) -> None:
    iterator = stream.__aiter__()
    while limit is None or outcome.chunks < limit:
        outcome.last_read_started_ns = time.time_ns()
        try:
            await iterator.__anext__()
        except StopAsyncIteration:
            break
        outcome.chunks += 1
    if limit is not None:
        outcome.last_read_started_ns = time.time_ns()
        await stream.close()
    outcome.finished_ns = time.time_ns()
