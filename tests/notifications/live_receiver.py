"""The webhook receiver served by uvicorn on 127.0.0.1 in a thread, as `nightshift webhooks serve` runs
it; the tests post real HTTP requests to it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import uvicorn
from sqlalchemy.engine import Engine

from nightshift.notifications.webhooks import meta_signature
from nightshift.receiver import ReceiverSettings, create_app

APP_SECRET = "meta-app-secret-789"
VERIFY_TOKEN = "verify-me-321"
WACHAP_SECRET = "wachap-hook-secret-654"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveReceiver:
    def __init__(self, engine: Engine, *, metrics: Callable[[], tuple[bytes, str]] | None = None,
                 metrics_enabled: bool = True, **settings: Any) -> None:
        self.port = free_port()
        self.settings = ReceiverSettings(host="127.0.0.1", port=self.port, meta_verify_token=VERIFY_TOKEN,
                                         meta_app_secret=APP_SECRET, wachap_secret=WACHAP_SECRET,
                                         metrics=metrics_enabled, **settings)
        config = uvicorn.Config(create_app(engine, self.settings, metrics), host="127.0.0.1", port=self.port,
                                log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the receiver did not start")
            time.sleep(0.02)
        self.http = requests.Session()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post_meta(self, payload: Any, *, secret: str = APP_SECRET, signature: str | None = None) -> requests.Response:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json",
                   "X-Hub-Signature-256": signature if signature is not None else meta_signature(secret, body)}
        return self.http.post(f"{self.url}/webhooks/meta", data=body, headers=headers, timeout=5)

    def post_wachap(self, payload: Any, *, secret: str = WACHAP_SECRET) -> requests.Response:
        return self.http.post(f"{self.url}/webhooks/wachap/{secret}", json=payload, timeout=5)

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)


def meta_status(message_id: str, status: str, *, notification_id: int | None = None, timestamp: int | None = None,
                errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One status entry as Meta posts it."""
    entry: dict[str, Any] = {"id": message_id, "status": status, "timestamp": str(timestamp or int(time.time())),
                             "recipient_id": "22370123456"}
    if notification_id is not None:
        entry["biz_opaque_callback_data"] = str(notification_id)
    if errors:
        entry["errors"] = errors
    return entry


def meta_body(*statuses: dict[str, Any], messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1234567890"}}
    if statuses:
        value["statuses"] = list(statuses)
    if messages:
        value["messages"] = messages
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "waba-1", "changes": [{"field": "messages", "value": value}]}]}
