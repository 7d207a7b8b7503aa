"""The Python baselines, each run in a process of its own so that its CPU time is its own.

    python -m bench.clients raw   --port P --messages N --connections C
    python -m bench.clients naive --port P --messages N --connections C

`raw`: aiosmtplib `sendmail()` of one prebuilt message (bytes) over C persistent
connections, the fastest a Python sender can go. `naive`: what a straightforward
newsletter loop does per recipient: render the template with Jinja2, inline its CSS with
premailer, build an `EmailMessage`, and `send_message()` it. Both print one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache
from pathlib import Path
from typing import Any

import aiosmtplib
import jinja2
import premailer

from bench import content

TEMPLATES = Path(__file__).resolve().parent / "templates"
UNSUBSCRIBE = "https://news.harbour.example.org/unsubscribe/{}"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        keep_trailing_newline=True,
    )


def recipient(i: int) -> tuple[str, str]:
    return f"reader{i}@example.net", f"Reader {i}"


def naive_message(i: int) -> EmailMessage:
    """One subscriber's copy, built the slow way: everything from scratch."""
    email, name = recipient(i)
    env = _environment()
    values: dict[str, Any] = {
        **content.template_context(),
        "name": name,
        "email": email,
        "unsubscribe_url": UNSUBSCRIBE.format(i),
    }
    html = env.get_template("newsletter.html.j2").render(values)
    html = premailer.transform(html, cssutils_logging_level=logging.CRITICAL)
    text = env.get_template("newsletter.txt.j2").render(values)
    msg = EmailMessage()
    msg["From"] = f"{content.FROM_NAME} <{content.FROM_EMAIL}>"
    msg["To"] = f"{name} <{email}>"
    msg["Subject"] = content.SUBJECT
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="harbour.example.org")
    msg["List-Unsubscribe"] = f"<{UNSUBSCRIBE.format(i)}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


_PAD_LINE = b"This line only pads the benchmark message to the size of Broadsheet's own.\n"


def prebuilt_message(size: int = 0) -> bytes:
    """The bytes of one naive message: the raw baseline sends these, unchanged.

    With `size`, lines are added after the closing MIME boundary (the epilogue, which mail
    readers ignore) until the message has that many bytes, so that the baselines carry as
    many bytes and lines as the message Broadsheet sends for the same issue."""
    data = naive_message(0).as_bytes()
    if len(data) < size:
        missing = size - len(data)
        rest = missing % len(_PAD_LINE)
        data += _PAD_LINE * (missing // len(_PAD_LINE)) + (
            b"x" * (rest - 1) + b"\n" if rest else b""
        )
    return data


async def _drive(port: int, messages: int, connections: int, send: Any) -> float:
    """Run `send(smtp, i)` for i in 0..messages-1 over `connections` persistent sessions."""
    counter = iter(range(messages))

    async def session() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
        await smtp.connect()
        try:
            for i in counter:
                await send(smtp, i)
        finally:
            await smtp.quit()

    start = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(connections)))
    return time.perf_counter() - start


async def run_raw(port: int, messages: int, connections: int, size: int) -> dict[str, Any]:
    data = prebuilt_message(size)
    sender = content.FROM_EMAIL

    async def send(smtp: aiosmtplib.SMTP, i: int) -> None:
        await smtp.sendmail(sender, [recipient(i)[0]], data)

    cpu = time.process_time()
    seconds = await _drive(port, messages, connections, send)
    cpu = time.process_time() - cpu
    return {"messages": messages, "seconds": seconds, "cpu_seconds": cpu, "bytes": len(data)}


def wire_bytes(data: bytes) -> bytes:
    """The message as it goes on the wire after DATA: CRLF line ends, dot-stuffed, ended."""
    data = re.sub(rb"\r\n|\n|\r", b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", data) + b".\r\n"


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One (possibly multi-line) SMTP reply; raises on anything but 2xx/3xx."""
    while True:
        line = await reader.readline()
        if len(line) < 4:
            raise RuntimeError(f"connection closed or bad reply: {line!r}")
        if line[3:4] != b"-":
            if line[:1] not in (b"2", b"3"):
                raise RuntimeError(f"refused: {line!r}")
            return line


async def run_pipelined(port: int, messages: int, connections: int, size: int) -> dict[str, Any]:
    """A lean sender on asyncio streams: the message prepared once as wire bytes, and
    MAIL, RCPT and DATA pipelined (RFC 2920) in one write per message. Not a baseline
    the targets use; it shows how much of the raw baseline's CPU is aiosmtplib's."""
    message = prebuilt_message(size)
    data = wire_bytes(message)
    sender = content.FROM_EMAIL.encode()
    counter = iter(range(messages))

    async def session() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await _reply(reader)
        writer.write(b"EHLO bench.example.org\r\n")
        if b"PIPELINING" not in await _ehlo(reader):
            raise RuntimeError("the server does not offer PIPELINING")
        for i in counter:
            rcpt = recipient(i)[0].encode()
            writer.write(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (sender, rcpt))
            for _ in range(3):
                await _reply(reader)
            writer.write(data)
            await _reply(reader)
        writer.write(b"QUIT\r\n")
        await reader.readline()
        writer.close()

    start = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(session() for _ in range(connections)))
    cpu = time.process_time() - cpu
    seconds = time.perf_counter() - start
    return {"messages": messages, "seconds": seconds, "cpu_seconds": cpu, "bytes": len(message)}


async def _ehlo(reader: asyncio.StreamReader) -> bytes:
    lines = b""
    while True:
        line = await reader.readline()
        lines += line
        if line[:1] != b"2":
            raise RuntimeError(f"EHLO refused: {line!r}")
        if line[3:4] != b"-":
            return lines


async def run_naive(port: int, messages: int, connections: int, size: int) -> dict[str, Any]:
    async def send(smtp: aiosmtplib.SMTP, i: int) -> None:
        await smtp.send_message(naive_message(i))

    size = len(prebuilt_message())
    cpu = time.process_time()
    seconds = await _drive(port, messages, connections, send)
    cpu = time.process_time() - cpu
    return {"messages": messages, "seconds": seconds, "cpu_seconds": cpu, "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.clients")
    parser.add_argument("kind", choices=["raw", "pipelined", "naive", "size"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--size", type=int, default=0, help="pad the raw message to this size")
    parser.add_argument("--uvloop", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    if args.kind == "size":
        print(json.dumps({"bytes": len(prebuilt_message())}))
        return
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    run = {"raw": run_raw, "pipelined": run_pipelined, "naive": run_naive}[args.kind]
    result = asyncio.run(run(args.port, args.messages, args.connections, args.size))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
