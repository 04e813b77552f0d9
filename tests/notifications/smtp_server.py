"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import email
import threading
from email.message import Message

from aiosmtpd.controller import Controller

from tests.notifications.live_receiver import free_port


class _Inbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class SmtpServer:
    def __init__(self) -> None:
        self.inbox = _Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def subjects(self) -> list[str]:
        with self.inbox.lock:
            return [message["Subject"] for message in self.inbox.messages]

    def close(self) -> None:
        self.controller.stop()
