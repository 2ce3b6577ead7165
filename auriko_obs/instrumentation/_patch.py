"""The hot path: wrappers around the SDK methods, and the one symmetric list of what gets patched.

A wrapper takes a timestamp, keeps references in a ``CallRecord``, calls the original method, and
hands the record to the pipeline. It never raises into the caller's code: a failure of ours is
counted and the original call goes ahead; the caller's own exception reaches it unchanged.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from time import time_ns
from typing import Any

import wrapt
from opentelemetry import context as otel_context

from ._call_record import (
    CURRENT,
    INTERNAL_ERRORS,
    CallRecord,
    may_ask_for_usage,
    note_usage_request,
    usage_request_accepted,
)
from ._streams import (
    AsyncStreamProxy,
    RawStreamProxy,
    SyncStreamProxy,
    aclose_helper_stream,
    close_helper_stream,
)

# What wrapt calls in place of a patched method: (the original, its instance, args, kwargs).
Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


class Hooks:
    """Where finished records go (None: not instrumented), whether content is captured, and the checks run
    on the caller's thread before each call is sent (the Jupyter extension's session budget), in order."""

    submit: Callable[[CallRecord], None] | None = None
    capture_content: bool = False
    before_call: tuple[Callable[[CallRecord], None], ...] = ()


class StopCall(Exception):
    """Raised by a ``before_call`` hook to stop a call before it is sent; the stop is recorded as a failed call."""


HOOKS = Hooks()


def _begin(kind: str, api: str, resource: Any, kwargs: dict[str, Any]) -> CallRecord:
    record = CallRecord(kind, api, kwargs, getattr(resource, "_client", None), time_ns(), otel_context.get_current())
    if (
        record.streaming
        and kind == "chat"
        and api == "openai"
        and not kwargs.get("stream_options")
        and not _raw_response_call(kwargs)
        and may_ask_for_usage(record.client)
    ):
        # Usage on streams needs include_usage; Auriko forces it anyway, other servers need asking (and
        # the stream proxy then hides the usage chunk the caller did not ask for). A server that rejects
        # the parameter gets the call again as written (`_call`), and is not asked again.
        record.caller_stream_options = kwargs.get("stream_options", _ABSENT)
        kwargs["stream_options"] = {"include_usage": True}
        record.injected_usage = True
    if HOOKS.capture_content:
        messages = kwargs.get("messages", kwargs.get("input"))
        record.messages = list(messages) if isinstance(messages, (list, tuple)) else messages
    return record


_ABSENT = object()


def _rejected_our_usage_request(record: CallRecord, error: BaseException) -> bool:
    """Returns whether a failed stream failed for the include_usage we added: a 400 or 422, from a server not
    known to accept it, whose error names the parameter (``stream_options`` or ``include_usage``, as an
    unknown argument's message, ``param`` or a validation error's location does). The call is then sent again
    exactly as the caller wrote it. Any other rejection (a context too long, a filtered prompt, an unknown
    model) reaches the caller as it is, sent once."""
    try:
        return (
            record.injected_usage
            and getattr(error, "status_code", None) in (400, 422)
            and not usage_request_accepted(record.client)
            and _names_our_parameter(error)
        )
    except Exception as exc:
        INTERNAL_ERRORS.record("usage.rejected", exc)
        return False


def _names_our_parameter(error: BaseException) -> bool:
    body = getattr(error, "body", None)
    # The SDK's error holds the server's answer: its message, and its body (parsed JSON, or the text)
    text = f"{getattr(error, 'message', '')} {body if isinstance(body, str) else json.dumps(body, default=str)}"
    text = text.lower()
    return "stream_options" in text or "include_usage" in text


def _withdraw_usage_request(record: CallRecord, kwargs: dict[str, Any]) -> None:
    if record.caller_stream_options is _ABSENT:
        kwargs.pop("stream_options", None)
    else:
        kwargs["stream_options"] = record.caller_stream_options
    record.injected_usage = False
    record.usage_resent = True
    record.status = record.headers = record.content = record.http = None
    record.attempts = 0


def _call_sync(record: CallRecord, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Returns the SDK call's result; what the caller receives never depends on our include_usage."""
    if not record.injected_usage:
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except Exception as exc:
        if not _rejected_our_usage_request(record, exc):
            raise
    else:
        note_usage_request(record.client, accepted=True)
        return result
    _withdraw_usage_request(record, kwargs)  # outside the except block: the caller's traceback stays its own
    result = wrapped(*args, **kwargs)
    note_usage_request(record.client, accepted=False)  # it was our parameter the server refused
    return result


async def _call_async(
    record: CallRecord, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The async twin of ``_call_sync``."""
    if not record.injected_usage:
        return await wrapped(*args, **kwargs)
    try:
        result = await wrapped(*args, **kwargs)
    except Exception as exc:
        if not _rejected_our_usage_request(record, exc):
            raise
    else:
        note_usage_request(record.client, accepted=True)
        return result
    _withdraw_usage_request(record, kwargs)
    result = await wrapped(*args, **kwargs)
    note_usage_request(record.client, accepted=False)
    return result


def _raw_response_call(kwargs: dict[str, Any]) -> bool:
    # with_raw_response / with_streaming_response mark their calls so: their caller may read the raw
    # bytes, where a usage chunk we asked for could not be hidden.
    headers = kwargs.get("extra_headers")
    return isinstance(headers, dict) and any(str(k).lower() == "x-stainless-raw-response" for k in headers)


def _finish(record: CallRecord, result: Any, submit: Callable[[CallRecord], None]) -> Any:
    """Returns what the caller gets: the result itself, or a proxy for a stream."""
    try:
        # With content capture on, every chunk is kept (the completion text is in the deltas).
        if record.streaming and hasattr(result, "__aiter__"):
            return AsyncStreamProxy(result, record, submit, HOOKS.capture_content)
        if record.streaming and hasattr(result, "__iter__"):
            return SyncStreamProxy(result, record, submit, HOOKS.capture_content)
        if record.streaming and hasattr(result, "parse") and hasattr(result, "http_response"):
            return RawStreamProxy(result, record, submit, HOOKS.capture_content)  # with_raw_response
        # Not a stream (or a raw response whose body the caller reads later): the call is over.
        # The parsed result is kept only when the raw body was not captured (the auriko SDK, or a
        # body still unread): queued records then hold bytes, not a tree of pydantic objects.
        if record.content is None:
            record.result = result
        record.t1_ns = time_ns()
        submit(record)
    except Exception as exc:
        INTERNAL_ERRORS.record("finish", exc)
    return result


def _fail(record: CallRecord, exc: BaseException, submit: Callable[[CallRecord], None]) -> None:
    try:
        record.t1_ns = time_ns()
        record.error = exc
        submit(record)
    except Exception as inner:
        INTERNAL_ERRORS.record("fail", inner)


def _start(kind: str, api: str, instance: Any, kwargs: dict[str, Any]) -> CallRecord | None:
    """Returns a record for a call to instrument (while instrumented), or None to pass it straight through."""
    if CURRENT.get() is not None:
        return None
    try:
        return _begin(kind, api, instance, kwargs)
    except Exception as exc:
        INTERNAL_ERRORS.record("begin", exc)
        return None


def _before_call(record: CallRecord, submit: Callable[[CallRecord], None]) -> None:
    # A StopCall is the hook's decision (recorded, then raised to the caller); anything else is our bug.
    __tracebackhide__ = True  # IPython shows the caller's line, not ours
    for hook in HOOKS.before_call:
        try:
            hook(record)
        except StopCall as exc:
            _fail(record, exc, submit)
            raise
        except Exception as exc:
            INTERNAL_ERRORS.record("before_call", exc)


def sync_wrapper(kind: str, api: str) -> Wrapper:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        submit = HOOKS.submit
        if submit is None:  # not instrumented (any more)
            return wrapped(*args, **kwargs)
        record = _start(kind, api, instance, kwargs)
        if record is None:
            return wrapped(*args, **kwargs)
        if HOOKS.before_call:
            _before_call(record, submit)
        token = CURRENT.set(record)
        try:
            result = _call_sync(record, wrapped, args, kwargs)
        except BaseException as exc:
            _fail(record, exc, submit)
            raise
        finally:
            CURRENT.reset(token)
        return _finish(record, result, submit)

    return wrapper


def async_wrapper(kind: str, api: str) -> Wrapper:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        submit = HOOKS.submit
        if submit is None:  # not instrumented (any more)
            return await wrapped(*args, **kwargs)
        record = _start(kind, api, instance, kwargs)
        if record is None:
            return await wrapped(*args, **kwargs)
        if HOOKS.before_call:
            _before_call(record, submit)
        token = CURRENT.set(record)
        try:
            result = await _call_async(record, wrapped, args, kwargs)
        except BaseException as exc:
            _fail(record, exc, submit)
            raise
        finally:
            CURRENT.reset(token)
        return _finish(record, result, submit)

    return wrapper


def _capture_http_response(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    # openai builds an (Legacy)APIResponse around the final HTTP response of every call: take its
    # status, headers and (when already read) body.
    result = wrapped(*args, **kwargs)
    record = CURRENT.get()
    if record is not None:
        try:
            raw = kwargs["raw"]
            record.status = raw.status_code
            record.headers = raw.headers.raw
            if raw.is_closed:
                record.content = raw.content
            elif not record.streaming:
                record.http = raw
        except Exception as exc:
            INTERNAL_ERRORS.record("capture", exc)
    return result


def _count_attempt(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    record = CURRENT.get()
    if record is not None:
        record.attempts += 1
    return wrapped(*args, **kwargs)


@dataclass(frozen=True)
class Target:
    module: str
    path: str  # "Class.method"
    make: Callable[[], Wrapper]


def _call(kind: str, api: str, is_async: bool) -> Callable[[], Wrapper]:
    return (lambda: async_wrapper(kind, api)) if is_async else (lambda: sync_wrapper(kind, api))


_CHAT = "openai.resources.chat.completions.completions"
_RESP = "openai.resources.responses.responses"
_EMB = "openai.resources.embeddings"

# Everything we patch, in one list; uninstrument() restores exactly these.
OPENAI_TARGETS: tuple[Target, ...] = (
    Target(_CHAT, "Completions.create", _call("chat", "openai", False)),
    Target(_CHAT, "Completions.parse", _call("chat", "openai", False)),
    Target(_CHAT, "AsyncCompletions.create", _call("chat", "openai", True)),
    Target(_CHAT, "AsyncCompletions.parse", _call("chat", "openai", True)),
    Target(_RESP, "Responses.create", _call("responses", "openai", False)),
    Target(_RESP, "Responses.parse", _call("responses", "openai", False)),
    Target(_RESP, "AsyncResponses.create", _call("responses", "openai", True)),
    Target(_RESP, "AsyncResponses.parse", _call("responses", "openai", True)),
    Target(_EMB, "Embeddings.create", _call("embeddings", "openai", False)),
    Target(_EMB, "AsyncEmbeddings.create", _call("embeddings", "openai", True)),
)
HTTP_TARGETS: tuple[Target, ...] = (
    Target("openai._response", "BaseAPIResponse.__init__", lambda: _capture_http_response),
    Target("openai._legacy_response", "LegacyAPIResponse.__init__", lambda: _capture_http_response),
    Target("openai._base_client", "BaseClient._build_request", lambda: _count_attempt),
)
# The `.stream()` helpers' close() closes the HTTP response itself, bypassing our stream proxy: leaving
# their `with` block early must end the span too. A no-op for streams that are not being recorded.
_CHAT_HELPER = "openai.lib.streaming.chat._completions"
_RESP_HELPER = "openai.lib.streaming.responses._responses"
STREAM_HELPER_TARGETS: tuple[Target, ...] = (
    Target(_CHAT_HELPER, "ChatCompletionStream.close", lambda: close_helper_stream),
    Target(_CHAT_HELPER, "AsyncChatCompletionStream.close", lambda: aclose_helper_stream),
    Target(_RESP_HELPER, "ResponseStream.close", lambda: close_helper_stream),
    Target(_RESP_HELPER, "AsyncResponseStream.close", lambda: aclose_helper_stream),
)
AURIKO_TARGETS: tuple[Target, ...] = (
    Target("auriko.resources.chat", "Completions.create", _call("chat", "auriko", False)),
    Target("auriko.resources.chat", "AsyncCompletions.create", _call("chat", "auriko", True)),
    Target("auriko.resources.responses", "Responses.create", _call("responses", "auriko", False)),
    Target("auriko.resources.responses", "AsyncResponses.create", _call("responses", "auriko", True)),
)


class Patcher:
    """Applies and reverts the class-level patches; both are idempotent."""

    def __init__(self) -> None:
        self._applied: list[tuple[type, str, Any]] = []

    @property
    def active(self) -> bool:
        return bool(self._applied)

    def apply(self, targets: tuple[Target, ...]) -> int:
        """Returns how many targets were newly patched (missing modules/methods are skipped)."""
        done = {(owner, name) for owner, name, _ in self._applied}
        count = 0
        for target in targets:
            found = _resolve(target)
            if found is None or (found[0], found[1]) in done:
                continue
            owner, name, original = found
            setattr(owner, name, wrapt.FunctionWrapper(original, target.make()))
            self._applied.append((owner, name, original))
            count += 1
        return count

    def revert(self) -> None:
        for owner, name, original in reversed(self._applied):
            setattr(owner, name, original)
        self._applied.clear()


def _resolve(target: Target) -> tuple[type, str, Any] | None:
    try:
        module = importlib.import_module(target.module)
    except ImportError:
        return None
    class_name, name = target.path.split(".")
    owner = getattr(module, class_name, None)
    if not isinstance(owner, type):
        return None
    original = owner.__dict__.get(name)
    if original is None:
        return None
    return owner, name, original


def wrap_instance_methods(client: Any) -> int:
    """Returns how many methods of one client instance were wrapped (instance attributes only)."""
    count = 0
    for attr_path, target in _instance_targets(client):
        owner_path, name = attr_path.rsplit(".", 1)
        owner = client
        for part in owner_path.split("."):
            owner = getattr(owner, part, None)
            if owner is None:
                break
        method = getattr(owner, name, None) if owner is not None else None
        if method is None or isinstance(owner.__dict__.get(name), wrapt.FunctionWrapper):
            continue
        setattr(owner, name, wrapt.FunctionWrapper(method, target.make()))
        count += 1
    return count


def _instance_targets(client: Any) -> list[tuple[str, Target]]:
    import openai

    is_async = isinstance(client, openai.AsyncOpenAI) or type(client).__name__.startswith("Async")
    api = "openai" if isinstance(client, (openai.OpenAI, openai.AsyncOpenAI)) else "auriko"
    pairs = [
        ("chat.completions.create", "chat"),
        ("chat.completions.parse", "chat"),
        ("responses.create", "responses"),
        ("responses.parse", "responses"),
        ("embeddings.create", "embeddings"),
    ]
    return [(path, Target("", path, _call(kind, api, is_async))) for path, kind in pairs]
