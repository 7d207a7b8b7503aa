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
    parser.add_argument("kind", choices=["raw", "naive", "size"])
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
    run = run_raw if args.kind == "raw" else run_naive
    result = asyncio.run(run(args.port, args.messages, args.connections, args.size))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
