"""bench.proxy, the stand-in for a network: every chunk arrives late by the one-way time,
in both directions, in the order it was sent, and the bandwidth is not capped by it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bench.proxy import DelayProxy

ONE_WAY = 0.05


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    for _ in range(10_000):  # bounded: the test sends far fewer chunks
        data = await reader.read(1 << 16)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def through_proxy() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A connection to an echo server on 127.0.0.1 through a proxy 50 ms each way."""
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = DelayProxy(echo.sockets[0].getsockname()[1], ONE_WAY)
    port = await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    yield reader, writer
    writer.close()
    await proxy.close()
    echo.close()


async def test_a_round_trip_costs_twice_the_one_way_time(
    through_proxy: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    reader, writer = through_proxy
    for _ in range(3):
        started = time.monotonic()
        writer.write(b"ping\r\n")
        line = await asyncio.wait_for(reader.readline(), 5)
        elapsed = time.monotonic() - started
        assert line == b"ping\r\n"
        # Never early; late only by the scheduling of two processes' worth of event loop.
        assert 2 * ONE_WAY <= elapsed < 2 * ONE_WAY + 0.5


async def test_chunks_keep_their_order_and_the_delay_does_not_cap_bandwidth(
    through_proxy: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    reader, writer = through_proxy
    sent = b"".join(b"%06d " % i + b"x" * 1000 + b"\n" for i in range(2000))
    started = time.monotonic()
    for start in range(0, len(sent), 4096):  # many chunks, written back to back
        writer.write(sent[start : start + 4096])
    await writer.drain()
    received = await asyncio.wait_for(reader.readexactly(len(sent)), 10)
    elapsed = time.monotonic() - started
    assert received == sent
    # 2 MB in flight at once: one round trip, not one per chunk (that would be 25 s).
    assert elapsed < 2 * ONE_WAY + 2.0


async def test_the_far_side_closing_reaches_the_client_after_the_delay(
    through_proxy: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    reader, writer = through_proxy
    writer.write(b"last words\r\n")
    writer.write_eof()  # the echo server answers, then closes its side
    assert await asyncio.wait_for(reader.readline(), 5) == b"last words\r\n"
    assert await asyncio.wait_for(reader.read(), 5) == b""
