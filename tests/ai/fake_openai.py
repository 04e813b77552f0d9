"""A local OpenAI-compatible server for the tests: a real HTTP server on 127.0.0.1 answering
POST /v1/chat/completions, scriptable per request (a text with or without usage, a status with an error
code and headers, an answer only after a delay, a finish_reason). Without a script it answers a valid text
for the kind it recognises in the request. It records every request body."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int = 200
    text: str | None = None  # None: a valid text for the request's kind
    usage: bool = True
    finish_reason: str = "stop"
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def ok(text: str | None = None, *, usage: bool = True, finish_reason: str = "stop",
       headers: dict[str, str] | None = None) -> Reply:
    return Reply(text=text, usage=usage, finish_reason=finish_reason, headers=headers or {})


def error(status: int, code: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, code=code, headers=headers or {})


def slow(seconds: float) -> Reply:
    return Reply(delay_s=seconds)


PROMPT_TOKENS, COMPLETION_TOKENS = 70, 30
DESCRIPTION = ("La Boulangerie Dupont accueille ses clients à Paris pour du pain frais chaque matin. "
               "Elle propose aussi des viennoiseries et des pâtisseries maison.")
META = "Boulangerie Dupont à Paris : pain frais, viennoiseries et pâtisseries maison."
FAQ = json.dumps({"faq": [{"question": "Où se trouve la boulangerie ?", "answer": "À Paris, rue de la Paix."},
                          {"question": "Que propose-t-elle ?", "answer": "Du pain et des pâtisseries."}]},
                 ensure_ascii=False)


def valid_text(body: dict[str, Any]) -> str:
    if body.get("response_format"):
        return FAQ
    if "méta-description" in body["messages"][1]["content"]:
        return META
    return DESCRIPTION


class FakeOpenAI:
    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.lock = threading.Lock()
        self.script: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.arrivals: list[float] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body in one segment: split writes meet the client's delayed ACK (a 40 ms stall).
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                    fake.arrivals.append(time.monotonic())
                    reply = fake.script.popleft() if fake.script else Reply()
                time.sleep(fake.latency_s + reply.delay_s)
                if reply.status == 200:
                    text = valid_text(body) if reply.text is None else reply.text
                    payload: dict[str, Any] = {
                        "id": "chatcmpl-test", "object": "chat.completion", "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                                     "message": {"role": "assistant", "content": text}}]}
                    if reply.usage:
                        payload["usage"] = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                                            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}
                else:
                    payload = {"error": {"message": f"scripted {reply.status}", "type": reply.code or "error",
                                         "code": reply.code}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its read timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def then(self, *replies: Reply) -> FakeOpenAI:
        with self.lock:
            self.script.extend(replies)
        return self

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
