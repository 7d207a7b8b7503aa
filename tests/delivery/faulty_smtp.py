"""A real SMTP server (aiosmtpd) that injects faults on demand, for delivery tests.

Rules say what to do at a stage of the transaction (`mail`, `rcpt`, `data`) for chosen
recipients and attempts: reply with a code (4xx, 5xx, 5.7.x), drop the connection, or
be slow. It can also be stopped and started again on the same port (server down, up).
Every accepted message is captured like `tests.smtp.MailSink` does.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from tests.smtp import Captured, MailSink, free_port, start_smtp_server

DROP = "drop"


@dataclass
class Rule:
    stage: str  # "mail", "rcpt" or "data"
    reply: str  # an SMTP reply line such as "451 4.3.0 try later", or DROP
    recipients: frozenset[str] | None = None  # None: every recipient
    attempts: frozenset[int] | None = None  # 1-based attempts per recipient; None: all
    delay: float = 0.0  # seconds to wait before answering

    def matches(self, stage: str, recipient: str | None, attempt: int) -> bool:
        if stage != self.stage:
            return False
        if self.recipients is not None and recipient not in self.recipients:
            return False
        return self.attempts is None or attempt in self.attempts


@dataclass
class FaultySink(MailSink):
    """A MailSink that answers by the rules it is given (and notes when it accepted)."""

    times: list[float] = field(default_factory=list)  # time.monotonic() of each acceptance
    rules: list[Rule] = field(default_factory=list)
    tries: Counter[str] = field(default_factory=Counter)
    accept_delay: float = 0.0
    pipelining: bool = False  # offer PIPELINING (RFC 2920) in the EHLO reply

    def add(
        self,
        stage: str,
        reply: str,
        *,
        to: Iterable[str] | None = None,
        attempts: Iterable[int] | None = None,
        delay: float = 0.0,
    ) -> None:
        with self.lock:
            self.rules.append(
                Rule(
                    stage,
                    reply,
                    frozenset(to) if to is not None else None,
                    frozenset(attempts) if attempts is not None else None,
                    delay,
                )
            )

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.times.clear()
            self.rules.clear()
            self.tries.clear()
            self.accept_delay = 0.0

    def _rule(self, stage: str, recipient: str | None) -> Rule | None:
        with self.lock:
            attempt = self.tries[recipient] if recipient else 0
            for rule in self.rules:
                if rule.matches(stage, recipient, attempt):
                    return rule
        return None

    async def _apply(self, server: Any, rule: Rule) -> str | None:
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.reply == DROP:
            if server.transport is not None:
                server.transport.close()
            return "421 4.4.2 connection dropped"
        return rule.reply if rule.reply else None

    async def handle_EHLO(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            # aiosmtpd reads command by command, so a pipelined client is served as is.
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        rule = self._rule("mail", None)
        if rule is not None:
            reply = await self._apply(server, rule)
            if reply is not None:
                return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            self.tries[address] += 1
        rule = self._rule("rcpt", address)
        if rule is not None:
            reply = await self._apply(server, rule)
            if reply is not None:
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        recipient = envelope.rcpt_tos[0] if envelope.rcpt_tos else None
        rule = self._rule("data", recipient)
        if rule is not None:
            reply = await self._apply(server, rule)
            if reply is not None:
                return reply
        if self.accept_delay:
            await asyncio.sleep(self.accept_delay)
        data = envelope.original_content or envelope.content
        with self.lock:
            self.messages.append(Captured(envelope.mail_from, list(envelope.rcpt_tos), data))
            self.times.append(time.monotonic())
        return "250 OK queued"

    # Reading what arrived.

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


class FaultyServer:
    """The sink on a fixed port that can go down and come back."""

    def __init__(self, sink: FaultySink | None = None, port: int | None = None) -> None:
        self.sink = sink or FaultySink()
        self.port = port or free_port()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.controller is None:
            self.controller = start_smtp_server(self.sink, port=self.port)

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
