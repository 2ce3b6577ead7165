"""What the hot path touches: the per-call record, the current-call context variable, and error counting.

Everything here is cheap by design: a call through an instrumented client takes two timestamps,
keeps references to its arguments and result in a ``CallRecord``, and appends that to a queue. All
extraction, span building and storage happens later on the pipeline's worker thread.
"""

from __future__ import annotations

import contextvars
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from .._internal_errors import INTERNAL_ERRORS as INTERNAL_ERRORS  # re-exported: the hot path's modules count here

# The call being made in this context, so that lower-level hooks (the HTTP response, retries) can
# attach what they see to it, and nested instrumented methods don't record the same call twice.
CURRENT: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar("auriko_obs_current", default=None)
# Extra span attributes for calls made in this context (notebook cell, experiment name, …).
EXTRA: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("auriko_obs_extra", default=None)

# Base URLs that answered like Auriko (its credit-balance header, or routing_metadata) in this process.
# Auriko sends usage on every stream unasked, so streams to them are sent exactly as the caller wrote them.
AURIKO_BASE_URLS: set[str] = set()
AURIKO_HOST_SUFFIX = "auriko.ai"
# On every Auriko response (docs/reference/auriko-contract.md#response-headers).
AURIKO_HEADER = b"x-credits-balance-microdollars"


def base_url_of(client: Any) -> Any:
    """Returns the client's base URL, None when it has none.

    openai's clients keep it in ``_base_url``; their ``base_url`` property (openai 3.x) imports a module on
    every read, about 2 µs, paid several times a call. Other clients (the auriko SDK's) are asked for
    ``base_url``."""
    values = getattr(client, "__dict__", None)
    base_url = values.get("_base_url") if values is not None else None
    return base_url if base_url is not None else getattr(client, "base_url", None)


class BaseUrl(NamedTuple):
    """What the calls need of a client's base URL: its text, and the server's host and port."""

    url: Any
    text: str
    host: str | None
    port: int | None


# id(base URL) → its BaseUrl: a client's URL object lives as long as the client, and its text (``str()`` of an
# httpx URL, about 1.5 µs) and server are needed for every call.
_BASE_URLS: dict[int, BaseUrl] = {}


def base_url_facts(base_url: Any) -> BaseUrl:
    """Returns the text, host and port of ``base_url``, remembered for the URL object."""
    cached = _BASE_URLS.get(id(base_url))
    if cached is None or cached.url is not base_url:  # ids are reused after GC: check identity
        text = str(base_url)
        parts = urlsplit(text)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        cached = BaseUrl(base_url, text, parts.hostname, port)
        if len(_BASE_URLS) > 1024:
            _BASE_URLS.clear()
        _BASE_URLS[id(base_url)] = cached
    return cached


def base_url_text(base_url: Any) -> str:
    """Returns ``str(base_url)``, remembered for the URL object."""
    return base_url_facts(base_url).text


def streams_usage_unasked(client: Any) -> bool:
    """Returns whether the client's server is Auriko, known by its host or by an earlier response."""
    base_url = base_url_of(client)
    if base_url is None:
        return False
    host = getattr(base_url, "host", None) or ""
    if host == AURIKO_HOST_SUFFIX or host.endswith("." + AURIKO_HOST_SUFFIX):
        return True
    return base_url_text(base_url) in AURIKO_BASE_URLS


# OpenAI-compatible servers answered 4xx to a stream we had asked for usage on (stream_options.include_usage,
# which older Azure OpenAI API versions and other strict servers reject), and servers that streamed fine with
# it. Streams to the first are sent exactly as the caller wrote them; a 4xx from the second is not ours.
USAGE_REJECTED_BASE_URLS: set[str] = set()
USAGE_ACCEPTED_BASE_URLS: set[str] = set()


def _base_url_key(client: Any) -> str | None:
    base_url = base_url_of(client)
    return None if base_url is None else base_url_text(base_url)


def may_ask_for_usage(client: Any) -> bool:
    """Returns whether a stream to the client's server may carry our include_usage (Auriko sends it unasked)."""
    return not streams_usage_unasked(client) and _base_url_key(client) not in USAGE_REJECTED_BASE_URLS


def usage_request_accepted(client: Any) -> bool:
    """Returns whether the client's server has streamed with our include_usage before."""
    return _base_url_key(client) in USAGE_ACCEPTED_BASE_URLS


def note_usage_request(client: Any, accepted: bool) -> None:
    """Remembers how the client's server answered a stream carrying our include_usage."""
    key = _base_url_key(client)
    if key is not None:
        (USAGE_ACCEPTED_BASE_URLS if accepted else USAGE_REJECTED_BASE_URLS).add(key)


def remember_auriko(client: Any) -> None:
    """Notes that the client's server answered like Auriko, for ``streams_usage_unasked``."""
    base_url = base_url_of(client)
    if base_url is not None:
        AURIKO_BASE_URLS.add(base_url_text(base_url))


class CallRecord:
    """The raw facts of one model call, filled on the caller's thread and read on the worker."""

    __slots__ = (
        "api",
        "attempts",
        "caller_stream_options",
        "chunks",
        "client",
        "content",
        "context",
        "error",
        "extra",
        "first_chunk_ns",
        "headers",
        "http",
        "injected_usage",
        "kind",
        "kwargs",
        "last_chunk_ns",
        "messages",
        "result",
        "status",
        "stream_end",
        "streaming",
        "t0_ns",
        "t1_ns",
        "usage_resent",
    )

    def __init__(self, kind: str, api: str, kwargs: dict[str, Any], client: Any, t0_ns: int, context: Any) -> None:
        self.kind = kind  # chat | responses | embeddings
        self.api = api  # openai | auriko
        self.kwargs = kwargs
        self.client = client
        self.t0_ns = t0_ns
        self.t1_ns = 0
        self.context = context
        self.extra = EXTRA.get()
        # From the SDK's final HTTP response: status, raw headers [(name, value) bytes] and, once read,
        # the body. Plain data rather than the response object, so queued records hold few objects
        # for the garbage collector to trace.
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.content: bytes | None = None
        self.http: Any = None  # the response itself, only while its body is still unread (with_streaming_response)
        self.attempts = 0
        self.result: Any = None
        self.error: BaseException | None = None
        self.chunks: list[Any] | None = None
        self.first_chunk_ns = 0
        self.last_chunk_ns = 0
        self.stream_end: str | None = None
        self.streaming = kwargs.get("stream") is True
        self.injected_usage = False
        self.caller_stream_options: Any = None  # what the caller passed, restored when a server rejects ours
        self.usage_resent = False  # a server rejected our include_usage: the call was sent again as written
        self.messages: Any = None
