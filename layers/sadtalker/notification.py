"""Job-end notifications: the message body, its HMAC signature, and the webhook URL guard.

Every job's end (SUCCEEDED, FAILED, TIMED_OUT, ABORTED) produces one JSON body (``message_body``): the
job id, the status, the execution's start/stop times, the job's outcome read from ``result.json`` (video,
preview, frames, timings, cost) or ``error.json`` (error name, message, state), and presigned GET links of
the video, the preview and the stream. functions/notify.py publishes it to the stack's SNS topic and, when
the job's params carry ``notify_url``, POSTs the same bytes to that URL, signed:

    X-SadTalker-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

The timestamp is inside the signed text, so a receiver that also checks its age refuses replays
(``verify``; the README has a standalone snippet). ``X-SadTalker-Delivery`` (``<job>/<status>``) is the same
for every attempt and every re-delivery: EventBridge delivers at least once, so a receiver dedupes on it.

The URL guard refuses what a webhook must never reach: anything but https; credentials in the URL; a
literal private, loopback, link-local or otherwise non-global address (``check_url``, at ValidateJob via
JobParams: InvalidParams). A hostname is resolved at send time and every address it resolves to must be
global (``resolve_public``); the connection then goes to the vetted address (TLS still verifies the
hostname), so a DNS answer that changes between the check and the connect cannot redirect the POST.
Redirects are not followed. Loopback over http is allowed only for local tests: ``ALLOW_LOOPBACK_ENV`` set
in a process that is neither a Lambda nor an ECS task (the local runtime sets it when asked).

No AWS imports: the handler brings the storage, the topic and the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidParams

SIGNATURE_HEADER = "X-SadTalker-Signature"
DELIVERY_HEADER = "X-SadTalker-Delivery"
EVENT_HEADER = "X-SadTalker-Event"
ALLOW_LOOPBACK_ENV = "SADTALKER_ALLOW_LOOPBACK_WEBHOOKS"
MAX_URL_LENGTH = 2048
BODY_VERSION = 1
END_STATUSES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
STATUS_EVENT_SOURCE = "aws.states"
STATUS_DETAIL_TYPE = "Step Functions Execution Status Change"
# Delivery: 4 attempts, 10 s each, backoff 1-2-4 s (full jitter): at most ~47 s, inside the notify
# function's timeout (functions/contract.py), so a dead receiver cannot make the invocation time out.
ATTEMPTS = 4
ATTEMPT_TIMEOUT_S = 10.0
BACKOFF_S = 1.0
SIGNATURE_TOLERANCE_S = 300


class WebhookRefused(Exception):
    """The webhook's host resolves to an address a webhook may not reach (logged; the job is unaffected)."""


def status_event_pattern(state_machine_arn: str) -> dict[str, Any]:
    """The EventBridge pattern of a job's end: the stack's rule and the local runtime's use this one."""
    return {"source": [STATUS_EVENT_SOURCE], "detail-type": [STATUS_DETAIL_TYPE],
            "detail": {"stateMachineArn": [state_machine_arn], "status": list(END_STATUSES)}}


# --- the URL guard ----------------------------------------------------------------------------------------
def loopback_allowed() -> bool:
    """Loopback http webhooks: local tests only (never inside a Lambda or an ECS task)."""
    deployed = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("ECS_CONTAINER_METADATA_URI_V4")
    return os.environ.get(ALLOW_LOOPBACK_ENV) == "1" and not deployed


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone id names no other host
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return addr


def _public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, loopback: bool) -> bool:
    if loopback and addr.is_loopback:
        return True
    return addr.is_global and not addr.is_multicast


def check_url(url: str) -> str:
    """A ``notify_url`` a job may carry, else InvalidParams naming what is wrong."""
    loopback = loopback_allowed()
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise InvalidParams(f"notify_url must be an https URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidParams(f"notify_url {url!r} is not a valid URL: {exc}") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidParams(f"notify_url {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidParams("notify_url must not carry credentials (user:password@): the signature "
                            f"header authenticates the notification ({SIGNATURE_HEADER})")
    addr = _address(host)
    is_loopback = (addr is not None and addr.is_loopback) or host == "localhost" or host.endswith(".localhost")
    if parts.scheme != "https" and not (loopback and is_loopback and parts.scheme == "http"):
        raise InvalidParams(f"notify_url must use https, got {parts.scheme or 'no'} scheme in {url!r}")
    if addr is not None and not _public(addr, loopback):
        raise InvalidParams(f"notify_url {url!r} points at {addr}, a private, loopback, link-local or "
                            "reserved address; webhooks go to public addresses only")
    if addr is None and is_loopback and not loopback:
        raise InvalidParams(f"notify_url {url!r} names the loopback host; webhooks go to public addresses only")
    if port == 0:
        raise InvalidParams(f"notify_url {url!r} has port 0")
    return url


def resolve_public(host: str, port: int,
                   resolve: Callable[..., list] = socket.getaddrinfo) -> list[str]:
    """The host's addresses, all of them global (else WebhookRefused): the ones to connect to."""
    loopback = loopback_allowed()
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebhookRefused(f"{host} does not resolve: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise WebhookRefused(f"{host} resolves to no address")
    for text in addresses:
        addr = _address(text)
        if addr is None or not _public(addr, loopback):
            # one private answer refuses the host: a resolver may rotate its answers between attempts
            raise WebhookRefused(f"{host} resolves to {text}, a private, loopback, link-local or reserved "
                                 "address; the webhook was not sent")
    return addresses


# --- signing ------------------------------------------------------------------------------------------------
def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, now: float | None = None,
           tolerance_s: int = SIGNATURE_TOLERANCE_S) -> bool:
    """A receiver's check: the header signs exactly ``body`` and is at most ``tolerance_s`` old."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


# --- the body -----------------------------------------------------------------------------------------------
def _iso(value: Any) -> str | None:
    """EventBridge's startDate/stopDate are epoch milliseconds."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000.0, UTC).isoformat().replace("+00:00", "Z")
    return value if isinstance(value, str) else None


def message_body(detail: dict[str, Any], outcome: dict[str, Any] | None,
                 links: dict[str, str | None], links_expire_at: str | None) -> dict[str, Any]:
    """The notification of one ended execution.

    ``detail``: the "Step Functions Execution Status Change" event's detail; ``outcome``: the job's
    result.json (SUCCEEDED) or error.json (otherwise; None when the job wrote none, as after a timeout
    or an abort); ``links``: presigned GET URLs by name (video, preview, stream), None when absent."""
    status = str(detail.get("status"))
    start, stop = detail.get("startDate"), detail.get("stopDate")
    body: dict[str, Any] = {
        "version": BODY_VERSION,
        "job_id": detail.get("name"),
        "status": status,
        "execution_arn": detail.get("executionArn"),
        "started_at": _iso(start),
        "stopped_at": _iso(stop),
        "duration_s": round((stop - start) / 1000.0, 3) if isinstance(start, (int, float))
        and isinstance(stop, (int, float)) else None,
    }
    outcome = outcome or {}
    if status == "SUCCEEDED":
        body.update({
            "video": outcome.get("video"), "preview": outcome.get("preview"),
            "frames": outcome.get("frames"), "duration_video_s": outcome.get("duration_s"),
            "timings": outcome.get("timings"), "cost": outcome.get("cost"),
            "synthetic_weights": bool(outcome.get("SYNTHETIC")), "error": None,
        })
    else:
        name = outcome.get("error") or detail.get("error") or status
        message = outcome.get("message") or detail.get("cause") or {
            "TIMED_OUT": "the job hit the state machine's timeout before it finished",
            "ABORTED": "the execution was stopped before the job finished",
        }.get(status, "the job failed without a message")
        body["error"] = {"error": name, "message": message, "state": outcome.get("state")}
    body["links"] = {k: v for k, v in links.items() if v}
    body["links_expire_at"] = links_expire_at if body["links"] else None
    return body


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes published and signed (compact, key order kept)."""
    return json.dumps(body, separators=(",", ":"), default=str).encode()


# --- delivery -----------------------------------------------------------------------------------------------
@dataclass
class Delivery:
    """What became of one webhook: ``delivered`` with the receiver's status, or the reason it was not."""

    url: str
    delivered: bool = False
    status: int | None = None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a vetted address; SNI and certificate checks still use the URL's hostname."""

    def __init__(self, host: str, address: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain http to a vetted loopback address (local tests only: ``check_url`` refuses it elsewhere)."""

    def __init__(self, host: str, address: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def post_webhook(url: str, body: bytes, secret: bytes, delivery_id: str, event: str, *,
                 attempts: int = ATTEMPTS, timeout_s: float = ATTEMPT_TIMEOUT_S, backoff_s: float = BACKOFF_S,
                 sleep: Callable[[float], None] = time.sleep,
                 resolve: Callable[..., list] = socket.getaddrinfo) -> Delivery:
    """POST ``body`` to ``url`` with the signature headers; retries network errors, timeouts, 5xx, 408
    and 429 with exponential backoff (full jitter). Never raises: the outcome is the returned Delivery."""
    out = Delivery(url)
    try:
        check_url(url)  # the job's params were checked at ValidateJob; the guard's rules may have changed
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    except InvalidParams as exc:
        out.errors.append(str(exc))
        return out
    connection = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    for attempt in range(attempts):
        if attempt:
            sleep(random.uniform(0, backoff_s * 2 ** (attempt - 1)))
        out.attempts = attempt + 1
        try:
            address = resolve_public(host, port, resolve)[0]  # resolved per attempt, vetted every time
        except WebhookRefused as exc:
            out.errors.append(str(exc))
            return out  # a private answer is a refusal, not a transient failure
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "sadtalker-notify/1",
            SIGNATURE_HEADER: sign(secret, body, int(time.time())),
            DELIVERY_HEADER: delivery_id,
            EVENT_HEADER: event,
        }
        conn = connection(host, address, port, timeout_s)
        try:
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            response.read(64 * 1024)
            out.status = response.status
        except (OSError, http.client.HTTPException) as exc:
            out.errors.append(f"attempt {attempt + 1}: {type(exc).__name__}: {exc}")
            continue
        finally:
            conn.close()
        if 200 <= out.status < 300:
            out.delivered = True
            return out
        out.errors.append(f"attempt {attempt + 1}: HTTP {out.status}")
        if not _retryable(out.status):
            return out  # 3xx (no redirects followed) and other 4xx: the receiver refused it
    return out
