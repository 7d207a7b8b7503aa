"""Sending across a network: Broadsheet and smtp-source through a proxy that adds latency.

    .venv/bin/python -m bench.latency [--rtt 20 --rtt 80] [--messages 2000] [--repeats 3]

Real relays are 5 to 80 ms away; on loopback a round trip costs microseconds. For each
round trip asked for (0, 20 and 80 ms by default), `bench.proxy` runs in its own process
between the senders and the benchmark's `smtp-sink`, holding every chunk for half the
round trip in each direction (0: no proxy, straight into the sink). Through it, in the
same minute and with the same message bytes (Broadsheet's own message for the benchmark
issue; `smtp-source -l` pads to its size):

- `smtp-source -d -s N`: Postfix's C client, N persistent sessions, one command per
  round trip (it does not pipeline); N is Broadsheet's starting pool (SMTP_POOL_SIZE, 8);
- Broadsheet: a fresh database, one `broadsheet worker` with its default settings
  (SEND_RATE=0 as everywhere in the benchmark), messages/s from the send request until
  every delivery is final, as in the main stage.

The two alternate which goes first from repeat to repeat; the ratio is taken within each
repeat. A longer round trip gets fewer messages (`--messages` up to 20 ms, then scaled
down by 20/rtt; 5 times as many at 0 ms) so that each measure takes about as long. This
stage is also part of `bench/run` (its rows in bench/results/latest.md); run alone, it
writes bench/results/latest-latency.md and <date>-latency.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from bench import baselines, report
from bench.broadsheet import deployment
from bench.database import ROOT, fresh_database
from bench.procs import Processes, free_port, wait_for_port
from bench.sink import SmtpSink

DEFAULT_RTTS = (0, 20, 80)
# Up to this round trip a measure sends all `--messages`; above it, proportionally fewer.
FULL_COUNT_RTT_MS = 20
MIN_MESSAGES = 100
# Loopback is some 40 times faster than 20 ms: more messages, or start-up is all it sees.
LOOPBACK_FACTOR = 5
Figures = dict[str, Any]


def messages_for(rtt_ms: int, messages: int) -> int:
    """How many messages a measure at `rtt_ms` sends: about the same wall time at any rtt."""
    if rtt_ms <= 0:
        return messages * LOOPBACK_FACTOR
    if rtt_ms <= FULL_COUNT_RTT_MS:
        return messages
    return max(MIN_MESSAGES, round(messages * FULL_COUNT_RTT_MS / rtt_ms))


def key(rtt_ms: int) -> str:
    """The figures' key of one round trip: `latency.rtt_20.broadsheet.msgs_per_s` ..."""
    return f"rtt_{rtt_ms}"


@contextlib.asynccontextmanager
async def delayed(processes: Processes, sink: SmtpSink, rtt_ms: int) -> AsyncIterator[int]:
    """The port to send to: a `bench.proxy` process `rtt_ms` round trip in front of the
    sink, stopped on leaving; with 0, the sink itself."""
    if rtt_ms <= 0:
        yield sink.port
        return
    port = free_port()
    args = [sys.executable, "-m", "bench.proxy", "--port", str(port)]
    args += ["--target", str(sink.port), "--one-way-ms", str(rtt_ms / 2)]
    proc = processes.start(args, cwd=ROOT)
    try:
        await asyncio.to_thread(wait_for_port, port, proc=proc)
        yield port
    finally:
        processes.stop(proc, timeout=5.0)


async def _source(
    sink: SmtpSink, processes: Processes, port: int, *, messages: int, sessions: int, size: int
) -> Figures:
    mark = sink.count
    figures = await asyncio.to_thread(
        baselines.smtp_source,
        sink,
        processes,
        messages=messages,
        sessions=sessions,
        size=size,
        port=port,
    )
    arrivals = sink.arrivals(mark, messages)
    if arrivals.first_at and arrivals.last_at and arrivals.last_at > arrivals.first_at:
        # First to last message the sink accepted: without connecting and greeting.
        figures["msgs_per_s_steady"] = (messages - 1) / (arrivals.last_at - arrivals.first_at)
    return figures


async def _broadsheet(
    sink: SmtpSink,
    processes: Processes,
    port: int,
    *,
    kind: str,
    label: str,
    messages: int,
    pool_size: int,
) -> Figures:
    async with (
        fresh_database(kind, label) as db,
        deployment(db, sink, processes, pool_size=pool_size, smtp_port=port) as dep,
    ):
        slug, _ = await dep.newsletter_with_subscribers(messages)
        issue_id = await dep.create_issue(slug)
        message_bytes = await dep.message_bytes(issue_id)
        # Generous: slower than 2 messages/s is a failure worth stopping for.
        result = await dep.send(issue_id, workers=1, timeout=max(120.0, messages / 2))
    figures = result.as_dict()
    figures["message_bytes"] = message_bytes
    first, last = figures["first_message_s"], figures["last_accepted_s"]
    if first is not None and last is not None and last > first:
        figures["msgs_per_s_steady"] = (messages - 1) / (last - first)
    return figures


async def measure(
    sink: SmtpSink,
    processes: Processes,
    *,
    rtts: list[int],
    messages: int,
    pool_size: int,
    size: int,
    kind: str,
    repeat: int,
) -> Figures:
    """One repeat: at each round trip, smtp-source and Broadsheet through the same proxy."""
    out: Figures = {}
    for rtt in rtts:
        n = messages_for(rtt, messages)
        figures: Figures = {"rtt_ms": rtt, "messages": n}
        async with delayed(processes, sink, rtt) as port:
            order = ["source", "broadsheet"] if repeat % 2 == 0 else ["broadsheet", "source"]
            for who in order:
                if who == "source":
                    figures["source"] = await _source(
                        sink, processes, port, messages=n, sessions=pool_size, size=size
                    )
                else:
                    figures["broadsheet"] = await _broadsheet(
                        sink,
                        processes,
                        port,
                        kind=kind,
                        label=f"latency{repeat}_{rtt}",
                        messages=n,
                        pool_size=pool_size,
                    )
        out[key(rtt)] = figures
        print(f"  latency {rtt} ms: {report.latency_line(figures)}", flush=True)
    return out


def main() -> None:
    """`python -m bench.latency`: `bench/run --only latency` with this stage's options."""
    import argparse

    from bench import main as bench_main

    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rtt", type=int, action="append", help="round trip in ms (repeat)")
    parser.add_argument("--messages", type=int, default=2000, help="messages up to 20 ms")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--pool-size", type=int, default=8)
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    args = parser.parse_args()
    argv = ["--only", "latency", "--repeats", str(args.repeats), "--latency-db", args.db]
    argv += ["--latency-messages", str(args.messages), "--pool-size", str(args.pool_size)]
    for rtt in args.rtt or DEFAULT_RTTS:
        argv += ["--rtt", str(rtt)]
    if args.no_write:
        argv.append("--no-write")
    bench_main.main(argv, command=" ".join(["python -m bench.latency", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
