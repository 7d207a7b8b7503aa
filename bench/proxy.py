"""A TCP proxy on 127.0.0.1 that holds every chunk for a fixed time, in both directions.

    .venv/bin/python -m bench.proxy --port P --target T --one-way-ms 10

These machines have no `tc netem`, so this stands in for a relay across a network: each
byte reaches the other side `one-way-ms` later than it would on loopback, so every round
trip costs twice that. Per direction of each connection, a reader stamps each chunk with
the time it may leave (read time + delay) and queues it; a writer sends the chunks in
their order, none before its stamp. The reader does not wait for the writer (up to a
bounded backlog), so the delay does not also cap the bandwidth: a long, wide wire.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

_CHUNK = 1 << 16
# Chunks in flight per direction before the reader waits: at most 64 MB held.
_BACKLOG = 1024
_HOST = "127.0.0.1"


async def _reader(
    reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes]], delay: float
) -> None:
    loop = asyncio.get_running_loop()
    data = b"-"
    while data:  # ends at end of file (b"")
        data = await reader.read(_CHUNK)
        await queue.put((loop.time() + delay, data))


async def _writer(writer: asyncio.StreamWriter, queue: asyncio.Queue[tuple[float, bytes]]) -> None:
    loop = asyncio.get_running_loop()
    while True:  # ends with the end-of-file chunk the reader always queues last
        due, data = await queue.get()
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        if not data:
            if writer.can_write_eof():
                writer.write_eof()
            return
        writer.write(data)
        await writer.drain()


async def _direction(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_BACKLOG)
    async with asyncio.TaskGroup() as group:  # one failing cancels the other
        group.create_task(_reader(reader, queue, delay))
        group.create_task(_writer(writer, queue))


class DelayProxy:
    """Listens on 127.0.0.1 and relays each connection to `target_port`, both ways late by
    `one_way` seconds."""

    def __init__(self, target_port: int, one_way: float) -> None:
        self.target_port = target_port
        self.one_way = one_way
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        """Start listening (port 0: any free one); the port it listens on."""
        self._server = await asyncio.start_server(self._relay, _HOST, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            server_in, server_out = await asyncio.open_connection(_HOST, self.target_port)
        except OSError:
            client_out.close()
            return
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_direction(client_in, server_out, self.one_way))
                group.create_task(_direction(server_in, client_out, self.one_way))
        except* OSError:
            pass  # a reset on either side ends the other too, as on a real connection
        finally:
            for writer in (server_out, client_out):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()


async def serve(port: int, target_port: int, one_way: float) -> None:
    proxy = DelayProxy(target_port, one_way)
    await proxy.start(port)
    print(f"proxy 127.0.0.1:{port} -> 127.0.0.1:{target_port}, {one_way * 1000:g} ms each way")
    await asyncio.Event().wait()  # until the benchmark stops this process


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.proxy", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--port", type=int, required=True, help="where to listen")
    parser.add_argument("--target", type=int, required=True, help="the port to relay to")
    parser.add_argument("--one-way-ms", type=float, required=True, help="delay each way")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.target, args.one_way_ms / 1000))


if __name__ == "__main__":
    main()
