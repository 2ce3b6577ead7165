"""Delivery of a rendered report: to a file, a webhook (Slack-compatible), or email over SMTP.

Each ``deliver_*`` returns a one-line description of what it did and raises ``DeliveryError`` when the
report did not arrive, so that the command exits non-zero.

Email settings come from the environment, never from the command line or a config file, so that no
password lands in shell history or a crontab:

=============================  ==============================================================
``AURIKO_OBS_SMTP_HOST``       SMTP server (required)
``AURIKO_OBS_SMTP_PORT``       port, default 587 (submission with STARTTLS)
``AURIKO_OBS_SMTP_USER``       login user; no login when unset
``AURIKO_OBS_SMTP_PASSWORD``   login password
``AURIKO_OBS_SMTP_FROM``       sender address, default the user
``AURIKO_OBS_SMTP_CAFILE``     CA bundle to verify the server with (default: the system's)
=============================  ==============================================================

STARTTLS is always used, and the server certificate is always verified.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import random
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any


class DeliveryError(RuntimeError):
    """The report could not be delivered (after retries, for webhooks)."""


def deliver_file(content: bytes, path: str | os.PathLike[str]) -> str:
    """Returns a description after writing ``content`` to ``path`` atomically (write, then rename)."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(content)
        partial.replace(target)
    except OSError as exc:
        raise DeliveryError(f"cannot write {target}: {exc.strerror or exc}") from None
    return f"wrote {target} ({len(content):,} bytes)"


@dataclass(frozen=True)
class Retry:
    """How a webhook is retried: ``attempts`` in all, waits growing from ``base_s`` by ``factor`` (jittered).

    ``timeout_s`` is the deadline of one attempt, from connecting to the last byte of the answer; so a run
    takes at most ``attempts × timeout_s`` plus the waits between attempts."""

    attempts: int = 5
    base_s: float = 1.0
    factor: float = 2.0
    max_s: float = 60.0
    timeout_s: float = 10.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Returns the wait before retry number ``attempt`` (1-based): a server's Retry-After wins."""
        if retry_after is not None:
            return min(retry_after, self.max_s)
        return min(self.base_s * self.factor ** (attempt - 1), self.max_s) * (0.5 + random.random() / 2)


def _retryable(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


def _retry_after(headers: Any) -> float | None:
    try:
        return float(headers.get("Retry-After")) if headers and headers.get("Retry-After") else None
    except (TypeError, ValueError):
        return None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Makes every 3xx an HTTPError: following a redirect would turn the POST into a GET without the report."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Deadline:
    """Shuts down the sockets of one attempt when its time is up.

    A socket timeout bounds each read, not the attempt: a server that sends one header line every few
    seconds never trips it. Shutting the socket down from a timer ends the read wherever it is.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._finished = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._shutdown(sock)

    def finish(self) -> bool:
        """Returns whether the attempt ended in time; after this call the deadline no longer fires."""
        with self._lock:
            self._timer.cancel()
            self._finished = True
            return not self.expired

    def _expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.expired = True
            for sock in self._sockets:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """Returns an opener that follows no redirect and hands every socket it opens to ``deadline``."""

    def watched(connection_class: type[http.client.HTTPConnection]) -> Callable[..., http.client.HTTPConnection]:
        class Watched(connection_class):  # type: ignore[valid-type,misc]
            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)

        return Watched

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(watched(http.client.HTTPConnection), req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(watched(http.client.HTTPSConnection), req, context=ssl.create_default_context())

    return urllib.request.build_opener(_NoRedirects, HTTP, HTTPS)


def _post_once(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """Returns the status of one POST that got a 2xx answer, read in full within ``timeout_s`` in all.

    Raises urllib.error.HTTPError for any other status (3xx included), and OSError (or an http.client
    error) when the server did not answer within the deadline."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with _Deadline(timeout_s) as deadline:
        try:
            with _opener(deadline).open(request, timeout=timeout_s) as response:
                response.read()
                status = int(response.status)
                in_time = deadline.finish()
        except (OSError, http.client.HTTPException) as exc:
            if deadline.expired:
                raise TimeoutError(f"no complete answer within {timeout_s:g}s") from None
            if isinstance(exc, urllib.error.HTTPError):
                raise
            raise OSError(str(getattr(exc, "reason", exc)) or type(exc).__name__) from None
    # A shut-down socket reads as the end of the answer, which http.client may take for a complete one.
    if not in_time:
        raise TimeoutError(f"no complete answer within {timeout_s:g}s")
    return status


def deliver_webhook(
    payload: dict,
    url: str,
    *,
    retry: Retry = Retry(),
    sleep: Callable[[float], None] = time.sleep,
    idempotency_key: str | None = None,
) -> str:
    """Returns a description after POSTing ``payload`` as JSON to ``url``, retrying with backoff.

    Each attempt has ``retry.timeout_s`` in all to be answered, headers and body (a server that drips its
    answer is cut off). Connection errors, timeouts, 408, 425, 429 and 5xx are retried (honouring
    Retry-After); other 4xx fail at once, since sending the same request again would not help. A 3xx is
    a failure, never followed: a redirected POST would arrive as a GET without the report. Every attempt
    carries the same ``Idempotency-Key`` header, when one is given, so that a receiver can drop repeats.
    """
    body = json.dumps(payload, default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "auriko-obs-report"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    target, authorization = _without_userinfo(url)
    if authorization:
        headers["Authorization"] = authorization
    last = "no attempt"
    for attempt in range(1, retry.attempts + 1):
        wait_hint = None
        try:
            status = _post_once(target, body, headers, retry.timeout_s)
            return f"posted to {_redact(url)}: HTTP {status} after {attempt} attempt(s)"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if 300 <= exc.code < 400:
                raise DeliveryError(
                    f"webhook {_redact(url)} answered {last} (a redirect): the report was not delivered; "
                    "use the URL it redirects to"
                ) from None
            if not _retryable(exc.code):
                raise DeliveryError(f"webhook {_redact(url)} refused the report: {last}") from None
            wait_hint = _retry_after(exc.headers)
        except OSError as exc:
            last = str(exc)
        if attempt < retry.attempts:
            sleep(retry.delay(attempt, wait_hint))
    raise DeliveryError(f"webhook {_redact(url)} failed after {retry.attempts} attempts: {last}")


def _without_userinfo(url: str) -> tuple[str, str | None]:
    """Returns the URL without its ``user:password@``, and that as a Basic Authorization header (None when
    there is none): urllib would look the whole ``user:password@host`` up as a host name, in DNS."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.username is None:
        return url, None
    netloc = parsed.netloc.rpartition("@")[2]
    user = urllib.parse.unquote(parsed.username)
    password = urllib.parse.unquote(parsed.password or "")
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc)), f"Basic {credentials}"


def _redact(url: str) -> str:
    """Returns ``url`` cut down to ``scheme://host[:port]/…``.

    Webhook URLs carry their secret in the path (Slack: /services/T…/B…/secret), the query (?token=…) or
    the userinfo (https://user:secret@host/), and this text goes to stderr and into the delivery log."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    try:
        port = f":{parsed.port}" if parsed.port is not None else ""
    except ValueError:  # not a number: it could be anything, a secret included
        port = ""
    return f"{parsed.scheme}://{host}{port}/…"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    user: str | None = None
    password: str | None = None
    sender: str | None = None
    cafile: str | None = None
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls, environ: dict | None = None) -> SmtpSettings:
        """Returns the settings from ``AURIKO_OBS_SMTP_*``; raises DeliveryError when the host is unset."""
        env = os.environ if environ is None else environ
        host = env.get("AURIKO_OBS_SMTP_HOST")
        if not host:
            raise DeliveryError("email needs AURIKO_OBS_SMTP_HOST (and usually _USER, _PASSWORD) in the environment")
        try:
            port = int(env.get("AURIKO_OBS_SMTP_PORT") or 587)
        except ValueError:
            raise DeliveryError(f"AURIKO_OBS_SMTP_PORT is not a port: {env.get('AURIKO_OBS_SMTP_PORT')!r}") from None
        user = env.get("AURIKO_OBS_SMTP_USER") or None
        return cls(
            host=host,
            port=port,
            user=user,
            password=env.get("AURIKO_OBS_SMTP_PASSWORD") or None,
            sender=env.get("AURIKO_OBS_SMTP_FROM") or user,
            cafile=env.get("AURIKO_OBS_SMTP_CAFILE") or None,
        )


def build_email(
    *,
    subject: str,
    text: str,
    html: bytes | None,
    html_name: str,
    sender: str,
    recipients: Sequence[str],
    message_id: str | None = None,
) -> EmailMessage:
    """Returns the message: ``text`` as the body, the HTML report as an attachment."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id or make_msgid(domain="auriko-obs.local")
    message.set_content(text)
    if html is not None:
        message.add_attachment(html, maintype="text", subtype="html", filename=html_name)
    return message


def deliver_email(message: EmailMessage, settings: SmtpSettings) -> str:
    """Returns a description after sending ``message`` over SMTP with STARTTLS (verified) and login."""
    context = ssl.create_default_context(cafile=settings.cafile)
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise DeliveryError(f"SMTP server {settings.host}:{settings.port} does not offer STARTTLS")
            smtp.starttls(context=context)
            smtp.ehlo()
            if settings.user:
                smtp.login(settings.user, settings.password or "")
            refused = smtp.send_message(message)
    except DeliveryError:
        raise
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        raise DeliveryError(f"email via {settings.host}:{settings.port} failed: {exc}") from None
    if refused:
        raise DeliveryError(f"the SMTP server refused: {', '.join(refused)}")
    return f"emailed {message['To']} via {settings.host}:{settings.port}"
