"""A local WhatsApp provider for the tests: a real HTTP server on 127.0.0.1 speaking the WaChap or Meta
API, scriptable per request (success, a status, an error code, Retry-After, a read timeout after the
request arrived, a reset connection). It records every request and every message it accepted."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nightshift.notification_settings import NotificationSettings, Pacing
from nightshift.notifications.providers import MetaBackend, Timeouts, WaChapBackend


@dataclass(frozen=True)
class Action:
    kind: str  # ok | status | code | hang | reset
    status: int = 200
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def ok() -> Action:
    return Action("ok")


def status(code: int, headers: dict[str, str] | None = None) -> Action:
    return Action("status", status=code, headers=headers or {})


def error_code(code: str, http_status: int = 400) -> Action:
    return Action("code", status=http_status, code=code)


def hang(seconds: float) -> Action:
    """Read the request, then answer only after `seconds` (the client's read timeout fires first)."""
    return Action("hang", seconds=seconds)


def reset() -> Action:
    """Read the request, then close the connection without an answer."""
    return Action("reset")


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # several sweeps' concurrent connections never wait for the listen queue


class FakeProvider:
    def __init__(self, api: str) -> None:
        self.api = api
        self.lock = threading.Lock()
        self.script: deque[Action] = deque()
        self.default: Callable[[dict[str, Any]], Action] = lambda request: ok()
        self.probe_status = 200
        self.connected_accounts = {"acc-uuid-1"}  # WaChap accounts whose session is up
        self.latency = 0.0
        self.connections = 0  # TCP connections accepted
        self.requests: list[dict[str, Any]] = []
        self.accepted: Counter = Counter()  # notification key (Meta: its id; WaChap: the body) -> times
        self.accepted_at: list[float] = []
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def then(self, *actions: Action) -> FakeProvider:
        self.script.extend(actions)
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sends(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    def _next(self, request: dict[str, Any]) -> Action:
        with self.lock:
            self.requests.append(request)
            return self.script.popleft() if self.script else self.default(request)

    def _accept(self, request: dict[str, Any]) -> dict[str, Any]:
        payload = request["json"] or {}
        with self.lock:
            if self.api == "meta":
                key = payload.get("biz_opaque_callback_data")
            else:
                key = payload.get("data", {}).get("content")
            self.accepted[key] += 1
            self.accepted_at.append(time.monotonic())
            number = sum(self.accepted.values())
        if self.api == "meta":
            return {"messaging_product": "whatsapp", "messages": [{"id": f"wamid.{number}"}]}
        return {"success": True, "messageId": f"wachap-{number}", "message": "sent"}

    def _error_body(self, code: str) -> dict[str, Any]:
        if self.api == "meta":
            return {"error": {"message": f"error {code}", "type": "OAuthException", "code": int(code)}}
        return {"success": False, "error": {"code": code, "message": f"error {code}"}}

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with provider.lock:
                    provider.connections += 1

            def _answer(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                # Headers and body in one write: no Nagle / delayed-ACK stall between the two.
                self._headers_buffer.append(b"\r\n" + data)
                self.flush_headers()

            def do_GET(self) -> None:
                provider._next({"method": "GET", "path": self.path, "headers": dict(self.headers), "json": None})
                if provider.probe_status != 200:
                    body: Any = {}
                elif provider.api == "meta":
                    body = {"id": self.path.split("?")[0].strip("/")}
                else:
                    body = {"data": [{"id": account, "status": "connected"} for account in
                                     sorted(provider.connected_accounts)]}
                self._answer(provider.probe_status, body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:  # the client died mid-request (a SIGKILLed sweep): no message arrived
                    self.close_connection = True
                    return
                payload = json.loads(body or b"null")
                action = provider._next({"method": "POST", "path": self.path, "headers": dict(self.headers),
                                         "json": payload})
                if provider.latency:
                    time.sleep(provider.latency)
                if action.kind == "ok":
                    self._answer(200, provider._accept({"json": payload}))
                elif action.kind == "status":
                    self._answer(action.status, {"error": {"message": f"HTTP {action.status}"}}, action.headers)
                elif action.kind == "code":
                    self._answer(action.status, provider._error_body(action.code))
                elif action.kind == "hang":
                    provider._accept({"json": payload})  # the provider got it; the answer comes too late
                    time.sleep(action.seconds)
                    self.close_connection = True
                elif action.kind == "reset":
                    provider._accept({"json": payload})
                    self.close_connection = True
                    self.connection.close()

        return Handler


FAST = Timeouts(connect=1.0, read=0.5)


def wachap_backend(server: FakeProvider, timeouts: Timeouts = FAST) -> WaChapBackend:
    return wachap_backend_for(server.url, timeouts)


def wachap_backend_for(url: str, timeouts: Timeouts = FAST) -> WaChapBackend:
    return WaChapBackend(url, "test-key-123", "acc-uuid-1", timeouts)


def meta_backend(server: FakeProvider, timeouts: Timeouts = FAST) -> MetaBackend:
    return MetaBackend(server.url, "meta-token-456", "1234567890", timeouts)


def fast_settings(**changes: Any) -> NotificationSettings:
    """Settings for sweeps against the local server: short timeouts, no pacing unless asked."""
    base = NotificationSettings()
    pacing = {name: Pacing(max_concurrency=8) for name in ("sandbox", "wachap", "meta")}
    values = {"connect_timeout_seconds": 1.0, "read_timeout_seconds": 0.5, "sweep_lease_seconds": 5, "pacing": pacing,
              **changes}
    return NotificationSettings(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, **values})
