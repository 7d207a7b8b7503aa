"""A real SMTP server (aiosmtpd) for tests: it captures every message it accepts."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


@dataclass
class Captured:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class MailSink:
    """Collects messages; tests read `messages` and wait with `wait_for`."""

    messages: list[Captured] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:  # noqa: N802
        data = envelope.original_content or envelope.content
        with self.lock:
            self.messages.append(Captured(envelope.mail_from, list(envelope.rcpt_tos), data))
        return "250 OK queued"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def to(self, address: str) -> list[Captured]:
        with self.lock:
            return [m for m in self.messages if address in m.rcpt_tos]

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Captured]:
        """Block until at least `count` messages arrived (bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"expected {count} messages, got {len(self.messages)}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_smtp_server(handler: Any, *, smtputf8: bool = True, port: int = 0) -> Controller:
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port or free_port(),
        enable_SMTPUTF8=smtputf8,
        decode_data=False,
        data_size_limit=50_000_000,
    )
    controller.start()
    return controller
