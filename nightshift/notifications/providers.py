"""The WhatsApp backends: sandbox (nothing leaves the machine), WaChap and the Meta Cloud API.

Each sends one message over one HTTP exchange and reports what happened as a `Reply` (status, provider
code, transport failure); the classifier decides what it means. Each sending thread keeps its connection
while it is fresh; a failure to open one proves the request never left. Secrets go in headers only,
never in a Reply.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from nightshift.backoff import retry_after_seconds
from nightshift.masking import mask_text
from nightshift.notifications.classify import Transport

WACHAP_DEFAULT_URL = "https://api.wachap.com/v1"
META_DEFAULT_URL = "https://graph.facebook.com/v21.0"
DETAIL_CHARS = 300


@dataclass(frozen=True)
class OutboundMessage:
    notification_id: int
    to: str  # E.164
    body: str
    account: str  # provider account name (routing done at enqueue)


@dataclass(frozen=True)
class Reply:
    http_status: int | None = None
    error_code: str | None = None
    message_id: str | None = None
    retry_after: float | None = None  # seconds, from a Retry-After header
    transport: Transport | None = None
    latency_ms: int = 0
    detail: str | None = None  # the provider's error text, phones masked


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 20.0


class Backend(Protocol):
    name: str
    leaves_machine: bool

    def send(self, message: OutboundMessage, account_id: str | None) -> Reply: ...

    def probe(self, account_id: str | None) -> bool: ...


class Connections(threading.local):
    """Each sending thread's open connection, reused for its next request while fresh. A connection
    idle longer than REUSE_IDLE_SECONDS is not reused: a server that closed it meanwhile would make a
    send ambiguous that never arrived."""

    REUSE_IDLE_SECONDS = 2.0

    def __init__(self) -> None:
        self.open: dict[tuple[str, str | None, int | None], tuple[http.client.HTTPConnection, float]] = {}

    def take(self, key: tuple[str, str | None, int | None]) -> http.client.HTTPConnection | None:
        found = self.open.pop(key, None)
        if found is None:
            return None
        connection, last_used = found
        if time.monotonic() - last_used > self.REUSE_IDLE_SECONDS:
            connection.close()
            return None
        return connection

    def keep(self, key: tuple[str, str | None, int | None], connection: http.client.HTTPConnection) -> None:
        self.open[key] = (connection, time.monotonic())


def http_exchange(method: str, url: str, *, headers: dict[str, str], payload: Any = None, timeouts: Timeouts,
                  connections: Connections | None = None) -> tuple[Reply, Any]:
    """One request: (Reply with status/transport/latency, parsed JSON body or None). A failure to open a
    new connection proves the request never left; any failure after that may have reached the server."""
    parts = urlsplit(url)
    key = (parts.scheme, parts.hostname, parts.port)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    body = None if payload is None else json.dumps(payload).encode()
    started = time.perf_counter()

    def elapsed() -> int:
        return round((time.perf_counter() - started) * 1000)

    connection = connections.take(key) if connections is not None else None
    if connection is None:
        connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(parts.hostname, parts.port, timeout=timeouts.connect)
        try:
            connection.connect()
        except OSError as exc:
            connection.close()
            return Reply(transport=Transport.CONNECT_FAILED, latency_ms=elapsed(), detail=type(exc).__name__), None
        connection.sock.settimeout(timeouts.read)
        # A reused connection must not wait on Nagle's algorithm for the server's delayed ACK.
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        connection.request(method, path or "/", body=body,
                           headers={**headers, **({"Content-Type": "application/json"} if body else {})})
        response = connection.getresponse()
        raw = response.read()
    except TimeoutError:
        connection.close()
        return Reply(transport=Transport.READ_TIMEOUT, latency_ms=elapsed(), detail="read timeout"), None
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        return Reply(transport=Transport.RESET_AFTER_SEND, latency_ms=elapsed(), detail=type(exc).__name__), None
    if connections is not None and not response.will_close:
        connections.keep(key, connection)
    else:
        connection.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    reply = Reply(http_status=response.status, retry_after=retry_after_seconds(response.getheader("Retry-After")),
                  latency_ms=elapsed())
    return reply, parsed


def _detail(text: Any) -> str | None:
    return None if text is None else mask_text(str(text))[:DETAIL_CHARS]


def _error(parsed: Any) -> dict[str, Any]:
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


class SandboxBackend:
    """Records what would be sent (the attempt rows and the log say so); nothing leaves the machine.
    An optional failure rate makes demos show retries."""

    name = "sandbox"
    leaves_machine = False

    def __init__(self, failure_rate: float = 0.0, rng: random.Random | None = None) -> None:
        self.failure_rate = failure_rate
        self.rng = rng or random.Random()

    def send(self, message: OutboundMessage, account_id: str | None) -> Reply:
        if self.failure_rate and self.rng.random() < self.failure_rate:
            return Reply(http_status=503, detail="sandbox: simulated provider failure")
        return Reply(http_status=200, message_id=f"sandbox-{uuid.uuid4()}")

    def probe(self, account_id: str | None) -> bool:
        return True


class WaChapBackend:
    name = "wachap"
    leaves_machine = True

    def __init__(self, base_url: str, api_key: str, default_account_id: str | None, timeouts: Timeouts) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.default_account_id = default_account_id
        self.timeouts = timeouts
        self.connections = Connections()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}

    def send(self, message: OutboundMessage, account_id: str | None) -> Reply:
        payload = {"data": {"accountId": account_id or self.default_account_id, "to": message.to, "type": "text",
                            "content": message.body, "isCampaign": False}}
        reply, parsed = http_exchange("POST", f"{self.base_url}/whatsapp/messages/send", headers=self._headers(),
                                      payload=payload, timeouts=self.timeouts, connections=self.connections)
        if reply.http_status is None:
            return reply
        error = _error(parsed)
        code = error.get("code")
        ok = isinstance(parsed, dict) and parsed.get("success") is True
        if reply.http_status < 300 and not ok and code is None:
            code = "SEND_ERROR"  # the gateway answered without saying it sent
        message_id = parsed.get("messageId") if ok else None
        detail = error.get("message") or (parsed.get("message") if isinstance(parsed, dict) and not ok else None)
        return Reply(reply.http_status, None if code is None else str(code), message_id and str(message_id),
                     reply.retry_after, None, reply.latency_ms, _detail(detail))

    def probe(self, account_id: str | None) -> bool:
        """Healthy when the gateway lists this account among its connected ones: a key that still works
        for a session that dropped (the phone logged out) is not healthy."""
        wanted = account_id or self.default_account_id
        query = urlencode({"status": "connected"})
        reply, parsed = http_exchange("GET", f"{self.base_url}/whatsapp/accounts?{query}", headers=self._headers(),
                                      timeouts=self.timeouts)
        if reply.http_status is None or not 200 <= reply.http_status < 300 or not isinstance(parsed, dict):
            return False
        listed = parsed.get("data")
        if not isinstance(listed, list):
            return False
        connected = {str(item.get("id") or item.get("accountId")) for item in listed
                     if isinstance(item, dict) and item.get("status", "connected") == "connected"}
        return wanted in connected if wanted is not None else bool(connected)


class MetaBackend:
    name = "meta"
    leaves_machine = True

    def __init__(self, base_url: str, token: str, default_phone_number_id: str | None, timeouts: Timeouts) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.default_phone_number_id = default_phone_number_id
        self.timeouts = timeouts
        self.connections = Connections()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    def send(self, message: OutboundMessage, account_id: str | None) -> Reply:
        number_id = account_id or self.default_phone_number_id
        payload = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": message.to,
                   "type": "text", "text": {"preview_url": False, "body": message.body},
                   # Echoed in status webhooks: the receipt finds its notification.
                   "biz_opaque_callback_data": str(message.notification_id)}
        reply, parsed = http_exchange("POST", f"{self.base_url}/{number_id}/messages", headers=self._headers(),
                                      payload=payload, timeouts=self.timeouts, connections=self.connections)
        if reply.http_status is None:
            return reply
        error = _error(parsed)
        code = error.get("code")
        messages = parsed.get("messages") if isinstance(parsed, dict) else None
        message_id = messages[0].get("id") if messages and isinstance(messages[0], dict) else None
        if reply.http_status < 300 and message_id is None and code is None:
            code = "131000"  # accepted without a message id: treat as the service error it is
        return Reply(reply.http_status, None if code is None else str(code), message_id, reply.retry_after, None,
                     reply.latency_ms, _detail(error.get("message")))

    def probe(self, account_id: str | None) -> bool:
        number_id = account_id or self.default_phone_number_id
        reply, parsed = http_exchange("GET", f"{self.base_url}/{number_id}?fields=id", headers=self._headers(),
                                      timeouts=self.timeouts)
        return (reply.http_status is not None and 200 <= reply.http_status < 300 and isinstance(parsed, dict)
                and str(parsed.get("id")) == str(number_id))
