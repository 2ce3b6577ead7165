"""Stream proxies: what the caller iterates over is unchanged, and the span ends on every exit path.

A proxy ends its call record exactly once: when the stream is exhausted (``completed``), raises
(``error``), is closed or its ``with`` block left early (``closed``: also through the SDK's ``.stream()``
helpers, whose ``close()`` closes the HTTP response directly), or is garbage-collected without any of
these (``abandoned``, timed at the last chunk the caller received). Streams still open when the process
exits end as ``abandoned`` at the exit flush, before the store is closed.
"""

from __future__ import annotations

from collections.abc import Callable
from time import time_ns
from typing import TYPE_CHECKING, Any

import wrapt

from ._call_record import AURIKO_HEADER, INTERNAL_ERRORS, CallRecord, remember_auriko

_CONTENT_EVENT_SUFFIX = ".delta"


_MISSING = object()

if TYPE_CHECKING:  # wrapt's stubs make the proxy generic; wrapt 1.x classes cannot be subscripted
    _ObjectProxy = wrapt.ObjectProxy[Any]
else:
    _ObjectProxy = wrapt.ObjectProxy

# Streams whose span has not ended yet (record → where it goes), so that the exit flush can end them.
OPEN_STREAMS: dict[CallRecord, Callable[[CallRecord], None]] = {}


def field(obj: Any, name: str) -> Any:
    """Returns a pydantic model's field or extra field (or a plain attribute), None when absent.

    ``getattr`` on a pydantic model for a missing extra raises and catches AttributeError inside
    pydantic, which costs microseconds per chunk; reading ``__dict__`` (declared fields, the common
    case, looked up first) and ``__pydantic_extra__`` does not.
    """
    values = getattr(obj, "__dict__", None)
    if values is not None:
        value = values.get(name, _MISSING)
        if value is not _MISSING:
            return value
    extra = getattr(obj, "__pydantic_extra__", None)
    if extra is not None:
        return extra.get(name)
    return getattr(obj, name, None)


def _keep_chat_chunk(chunk: Any, kept: list[Any]) -> bool:
    """Returns whether the worker needs this chunk: the first, and any with usage, metadata or a finish
    reason. Plain content deltas are dropped so that long streams stay cheap to hold."""
    if not kept:
        return True
    choices = field(chunk, "choices")
    if not choices or field(chunk, "usage") is not None:
        return True
    return any(field(choice, "finish_reason") for choice in choices)


def _keep_event(event: Any, kept: list[Any]) -> bool:
    event_type = field(event, "type")
    return not kept or not (isinstance(event_type, str) and event_type.endswith(_CONTENT_EVENT_SUFFIX))


def _is_injected_usage_chunk(chunk: Any) -> bool:
    # The usage-only chunk a non-Auriko server sends because we (not the caller) asked for it.
    # Auriko's own usage chunk carries routing_metadata and is always passed through.
    return (
        not field(chunk, "choices") and field(chunk, "usage") is not None and field(chunk, "routing_metadata") is None
    )


def _sent_unasked(record: CallRecord) -> bool:
    """Returns whether the server is Auriko after all (its header on this response): it sends the usage chunk
    unasked, with or without routing_metadata, so the caller sees it. The base URL is remembered."""
    if not any(name.lower() == AURIKO_HEADER for name, _ in record.headers or ()):
        return False
    record.injected_usage = False
    remember_auriko(record.client)
    return True


class _StreamProxyBase(_ObjectProxy):
    def __init__(
        self, wrapped: Any, record: CallRecord, submit: Callable[[CallRecord], None], keep_all: bool = False
    ) -> None:
        super().__init__(wrapped)
        self._self_chunks: list[Any] = []
        record.chunks = self._self_chunks
        if record.api == "auriko":  # the auriko SDK's streams keep headers and routing metadata themselves
            record.result = wrapped
        responses = record.kind == "responses"
        self._self_keep = _keep_event if responses else _keep_chat_chunk
        self._self_record = record
        self._self_submit = submit
        self._self_next: Callable[[], Any] | None = None
        self._self_keep_all = keep_all
        OPEN_STREAMS[record] = submit

    def _self_on_chunk(self, chunk: Any) -> bool:
        """Records a chunk; returns False when the caller must not see it (the usage chunk only we asked for)."""
        try:
            record = self._self_record
            now = time_ns()
            record.last_chunk_ns = now
            if not record.first_chunk_ns:  # the conventions' time to first chunk: any chunk, content or not
                record.first_chunk_ns = now
            chunks = self._self_chunks
            if self._self_keep_all or self._self_keep(chunk, chunks):
                chunks.append(chunk)
            return not (record.injected_usage and _is_injected_usage_chunk(chunk) and not _sent_unasked(record))
        except Exception as exc:
            INTERNAL_ERRORS.record("stream.chunk", exc)
            return True

    def _self_finish(self, how: str, error: BaseException | None = None) -> None:
        _end(self._self_record, self._self_submit, how, error)

    def __del__(self) -> None:
        self._self_finish("abandoned")


def _end(
    record: CallRecord, submit: Callable[[CallRecord], None], how: str, error: BaseException | None = None
) -> None:
    """Ends a stream's record (the first end wins) and hands it to the pipeline."""
    try:
        # Taking the record out of OPEN_STREAMS is the claim: dict.pop is atomic, so when the caller's
        # thread and the exit flush end the same stream at once, only one of them submits it.
        if OPEN_STREAMS.pop(record, None) is None:
            return
        record.stream_end = how
        record.error = error
        record.t1_ns = record.last_chunk_ns if how == "abandoned" and record.last_chunk_ns else time_ns()
        submit(record)
    except Exception as exc:
        INTERNAL_ERRORS.record("stream.finish", exc)


def _exception(exc_info: tuple[Any, ...]) -> BaseException | None:
    # An exception leaving the caller's `with` block ends the operation as failed (error.type is its class).
    error = exc_info[1] if len(exc_info) > 1 else None
    return error if isinstance(error, Exception) else None


class RawStreamProxy(_ObjectProxy):
    """Proxies the raw response of a streamed ``with_raw_response`` / ``with_streaming_response`` call.

    Headers and the rest read as the SDK's own; ``parse()`` hands out a stream proxy (the same one each
    time), so the call is recorded like any other stream and ends when that stream does. A raw response
    never parsed ends its call when it is closed, or as ``abandoned`` when it is garbage-collected.
    """

    def __init__(
        self, wrapped: Any, record: CallRecord, submit: Callable[[CallRecord], None], keep_all: bool = False
    ) -> None:
        super().__init__(wrapped)
        self._self_record = record
        self._self_submit = submit
        self._self_keep_all = keep_all
        self._self_parsed: Any = None
        self._self_stream: Any = None
        record.chunks = []
        OPEN_STREAMS[record] = submit

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = self.__wrapped__.parse(*args, **kwargs)
        if hasattr(parsed, "__await__"):  # AsyncAPIResponse.parse is a coroutine
            return self._self_parse_later(parsed)
        return self._self_wrap(parsed)

    async def _self_parse_later(self, pending: Any) -> Any:
        return self._self_wrap(await pending)

    def _self_wrap(self, parsed: Any) -> Any:
        try:
            if self._self_parsed is parsed:  # the SDK keeps what it parsed: one stream, one proxy
                return self._self_stream
            if hasattr(parsed, "__aiter__"):
                stream: Any = AsyncStreamProxy(parsed, self._self_record, self._self_submit, self._self_keep_all)
            elif hasattr(parsed, "__next__"):
                stream = SyncStreamProxy(parsed, self._self_record, self._self_submit, self._self_keep_all)
            else:  # parsed into something that is not a stream (`to=`): ends when the response closes
                return parsed
            self._self_parsed, self._self_stream = parsed, stream
            return stream
        except Exception as exc:
            INTERNAL_ERRORS.record("stream.parse", exc)
            return parsed

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            if self._self_stream is None:
                _end(self._self_record, self._self_submit, "closed")

    def __del__(self) -> None:
        if self._self_stream is None:
            _end(self._self_record, self._self_submit, "abandoned")


def end_open_streams() -> None:
    """Ends every stream still open as ``abandoned`` (at exit, when a stream the caller holds is never collected)."""
    for record, submit in list(OPEN_STREAMS.items()):
        _end(record, submit, "abandoned")


def close_helper_stream(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Wraps ``close()`` of the SDK's ``.stream()`` helpers, which close the HTTP response, not our proxy."""
    try:
        return wrapped(*args, **kwargs)
    finally:
        _close_raw_stream(instance)


async def aclose_helper_stream(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The async twin of ``close_helper_stream``."""
    try:
        return await wrapped(*args, **kwargs)
    finally:
        _close_raw_stream(instance)


def _close_raw_stream(helper: Any) -> None:
    raw = getattr(helper, "_raw_stream", None)
    if isinstance(raw, _StreamProxyBase):
        raw._self_finish("closed")


class SyncStreamProxy(_StreamProxyBase):
    """Proxies an ``openai.Stream`` (or ``auriko.Stream``) and records its chunks."""

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        while True:
            if self._self_next is None:
                wrapped = self.__wrapped__
                self._self_next = getattr(wrapped, "__next__", None) or iter(wrapped).__next__
            try:
                chunk = self._self_next()
            except StopIteration:
                self._self_finish("completed")
                raise
            except BaseException as exc:
                self._self_finish("error", exc)
                raise
            if self._self_on_chunk(chunk):
                return chunk

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_finish("closed", _exception(exc_info))

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_finish("closed")


class AsyncStreamProxy(_StreamProxyBase):
    """Proxies an ``openai.AsyncStream`` (or ``auriko.AsyncStream``) and records its chunks."""

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self._self_next is None:
                wrapped = self.__wrapped__
                self._self_next = getattr(wrapped, "__anext__", None) or wrapped.__aiter__().__anext__
            try:
                chunk = await self._self_next()
            except StopAsyncIteration:
                self._self_finish("completed")
                raise
            except BaseException as exc:
                self._self_finish("error", exc)
                raise
            if self._self_on_chunk(chunk):
                return chunk

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_finish("closed", _exception(exc_info))

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_finish("closed")
