"""The Broadsheet benchmark: `bench/run [options]` (which ends in `python -m bench.main`).

One run starts one `smtp-sink` and, R times over (interleaved, so that the machine's
drift hits every measure alike), measures the baselines and Broadsheet on SQLite and on
PostgreSQL. It reports medians over the repeats, and ratios computed within each repeat
(then their median), never across runs. Results: bench/results/<date>-<dbs>.json and
bench/results/latest.md. See /work/notes/README-bench.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shlex
import statistics
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import baselines, latency, report
from bench.broadsheet import Deployment, deployment, message_size
from bench.database import fresh_database
from bench.procs import MachineCpu, Processes, signals_as_exceptions
from bench.sink import SmtpSink
from bench.subscribe import run_subscribe, wrk_path

RESULTS = Path(__file__).resolve().parent / "results"
Figures = dict[str, Any]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20_000, help="subscribers per end-to-end send")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (medians)")
    p.add_argument("--db", default="sqlite,postgresql", help="sqlite, postgresql or both")
    p.add_argument("--pool-size", type=int, default=8, help="SMTP_POOL_SIZE (and raw connections)")
    p.add_argument("--source-messages", type=int, default=10_000)
    p.add_argument("--source-sessions", type=int, default=16)
    p.add_argument("--raw-messages", type=int, default=5_000)
    p.add_argument("--naive-messages", type=int, default=500)
    p.add_argument(
        "--peer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="django-newsletter beside ours (default: when its script is found)",
    )
    p.add_argument("--peer-messages", type=int, default=2_000)
    p.add_argument(
        "--enqueue-n", type=int, default=100_000, help="recipients for the enqueue timing"
    )
    p.add_argument(
        "--two-workers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also send with two worker processes on PostgreSQL",
    )
    p.add_argument(
        "--subscribe",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wrk against POST /newsletters/{slug}/subscribe on PostgreSQL",
    )
    p.add_argument("--api-workers", type=int, default=2)
    p.add_argument("--wrk-seconds", type=int, default=10)
    p.add_argument("--wrk-connections", type=int, default=32)
    p.add_argument("--subscribe-double-opt-in", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--big",
        action="store_true",
        help="also: enqueue 1,000,000 on PostgreSQL and worker RSS at 10k vs 1M",
    )
    p.add_argument("--big-n", type=int, default=1_000_000)
    p.add_argument(
        "--big-vacuum",
        action="store_true",
        help="--big: VACUUM ANALYZE delivery after each enqueue (autovacuum is off here)",
    )
    p.add_argument(
        "--big-timeout",
        type=float,
        default=1200.0,
        help="seconds the 1M send may take before the measure stops it",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the worker during the first send on each database (speedscope files)",
    )
    p.add_argument(
        "--rtt",
        type=int,
        action="append",
        help="latency stage: round trip in ms through bench.proxy, repeatable (default 0, 20, 80)",
    )
    p.add_argument(
        "--latency-messages",
        type=int,
        default=1000,
        help="latency stage: messages per measure up to 20 ms (20/rtt of it above; 5x at 0 ms)",
    )
    p.add_argument("--latency-db", default="sqlite", help="latency stage: sqlite or postgresql")
    p.add_argument(
        "--only",
        default="",
        help="comma-separated subset: source,raw,pipelined,naive,peer,sqlite,postgresql,"
        "subscribe,latency (latency alone writes latest-latency.md)",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-write", action="store_true", help="print, do not write results")
    args = p.parse_args(argv)
    args.rtt = args.rtt or list(latency.DEFAULT_RTTS)
    return args


def send_timeout(n: int) -> float:
    # Generous: a send slower than 50 messages/s is a failure worth stopping for.
    return max(60.0, n / 50)


class Bench:
    def __init__(self, args: argparse.Namespace, sink: SmtpSink, processes: Processes) -> None:
        self.args = args
        self.sink = sink
        self.processes = processes
        self.dbs = [d.strip() for d in args.db.split(",") if d.strip()]
        self.only = {s.strip() for s in args.only.split(",") if s.strip()}
        self.message_size = baselines.message_size()
        self.failures: list[str] = []
        self.info: Figures = {"message_bytes_naive": self.message_size}

    async def match_message_size(self) -> None:
        """Pad the raw and smtp-source messages to the size of Broadsheet's message."""
        try:
            size = await message_size(self.sink, self.processes)
        except Exception as exc:  # the baselines still run, at the naive message's size
            self.failures.append(f"Broadsheet's message size: {exc!r}")
            size = None
        self.info["message_bytes_broadsheet"] = size
        self.message_size = max(self.message_size, size or 0)
        self.info["message_bytes_baselines"] = self.message_size

    def wanted(self, name: str) -> bool:
        return not self.only or name in self.only

    def scenarios(self) -> list[tuple[str, Callable[[int], Awaitable[Figures]]]]:
        a = self.args
        out: list[tuple[str, Callable[[int], Awaitable[Figures]]]] = []
        if self.wanted("source"):
            out.append(("source", self.source))
        if self.wanted("raw"):
            out.append(("raw", self.raw))
        if self.wanted("pipelined"):
            out.append(("pipelined", self.pipelined))
        if self.wanted("naive"):
            out.append(("naive", self.naive))
        peer = a.peer if a.peer is not None else baselines.peer_available()
        if peer and self.wanted("peer"):
            out.append(("peer", self.peer))
        for kind in self.dbs:
            if self.wanted(kind):
                out.append((kind, self._broadsheet(kind)))
        if self.wanted("latency") and a.rtt:
            out.append(("latency", self.latency))
        if a.subscribe and "postgresql" in self.dbs and self.wanted("subscribe"):
            if wrk_path():
                out.append(("subscribe", self.subscribe))
            else:
                self.failures.append("subscribe: wrk not found (bench/run installs it)")
        return out

    async def source(self, repeat: int) -> Figures:
        return await asyncio.to_thread(
            baselines.smtp_source,
            self.sink,
            self.processes,
            messages=self.args.source_messages,
            sessions=self.args.source_sessions,
            size=self.message_size,
        )

    async def raw(self, repeat: int) -> Figures:
        return await asyncio.to_thread(
            baselines.python_client,
            "raw",
            self.sink,
            self.processes,
            messages=self.args.raw_messages,
            connections=self.args.pool_size,
            size=self.message_size,
        )

    async def pipelined(self, repeat: int) -> Figures:
        return await asyncio.to_thread(
            baselines.python_client,
            "pipelined",
            self.sink,
            self.processes,
            messages=self.args.raw_messages,
            connections=self.args.pool_size,
            size=self.message_size,
        )

    async def naive(self, repeat: int) -> Figures:
        return await asyncio.to_thread(
            baselines.python_client,
            "naive",
            self.sink,
            self.processes,
            messages=self.args.naive_messages,
            connections=self.args.pool_size,
        )

    async def peer(self, repeat: int) -> Figures:
        return await asyncio.to_thread(
            baselines.django_newsletter, self.sink, self.processes, messages=self.args.peer_messages
        )

    async def subscribe(self, repeat: int) -> Figures:
        async with fresh_database("postgresql", f"subscribe{repeat}") as db:
            return await asyncio.to_thread(
                run_subscribe,
                db,
                self.processes,
                api_workers=self.args.api_workers,
                seconds=self.args.wrk_seconds,
                connections=self.args.wrk_connections,
                double_opt_in=self.args.subscribe_double_opt_in,
            )

    async def latency(self, repeat: int) -> Figures:
        a = self.args
        return await latency.measure(
            self.sink,
            self.processes,
            rtts=a.rtt,
            messages=a.latency_messages,
            pool_size=a.pool_size,
            size=self.message_size,
            kind=a.latency_db,
            repeat=repeat,
        )

    def _broadsheet(self, kind: str) -> Callable[[int], Awaitable[Figures]]:
        async def run(repeat: int) -> Figures:
            return await self.broadsheet(kind, repeat)

        return run

    async def broadsheet(self, kind: str, repeat: int) -> Figures:
        a = self.args
        figures: Figures = {}
        async with (
            fresh_database(kind, f"e2e{repeat}") as db,
            deployment(db, self.sink, self.processes, pool_size=a.pool_size) as dep,
        ):
            slug, _ = await dep.newsletter_with_subscribers(a.n)
            plans = ["one"]
            if kind == "postgresql" and a.two_workers:
                # Alternate which goes first, so the second send's fuller tables even out.
                plans = ["one", "two"] if repeat % 2 == 0 else ["two", "one"]
            for plan in plans:
                issue_id = await dep.create_issue(slug)
                if "message_bytes" not in figures:
                    figures["message_bytes"] = await dep.message_bytes(issue_id)
                profile = None
                if a.profile and repeat == 0 and plan == "one":
                    profile = (
                        a.out / "profiles" / f"worker-{kind}-{dt.date.today()}.speedscope.json"
                    )
                result = await dep.send(
                    issue_id,
                    workers=1 if plan == "one" else 2,
                    timeout=send_timeout(a.n),
                    profile=profile,
                )
                figures["send" if plan == "one" else "send_two_workers"] = result.as_dict()
            if a.enqueue_n:
                big_slug, _ = await dep.newsletter_with_subscribers(a.enqueue_n)
                issue_id = await dep.create_issue(big_slug)
                seconds, recipients = await dep.enqueue_only(issue_id)
                figures["enqueue_big"] = {"recipients": recipients, "seconds": seconds}
        return figures

    async def big(self) -> Figures:
        """Once, not repeated: 1M enqueue on PostgreSQL; worker RSS and database CPU per
        message draining 10k and then 1M queued deliveries, each enqueued before its clock
        starts (with --big-vacuum, then VACUUM ANALYZE delivery, as autovacuum would)."""
        a = self.args
        out: Figures = {"vacuum_after_enqueue": a.big_vacuum}
        async with (
            fresh_database("postgresql", "big") as db,
            deployment(db, self.sink, self.processes, pool_size=a.pool_size) as dep,
        ):
            small_slug, _ = await dep.newsletter_with_subscribers(10_000)
            _, out["send_10k"] = await self.drain(dep, small_slug, timeout=300)
            t0 = time.monotonic()
            big_slug, _ = await dep.newsletter_with_subscribers(a.big_n)
            out["load_seconds"] = time.monotonic() - t0
            out["enqueue_1m"], out["send_1m"] = await self.drain(
                dep, big_slug, timeout=a.big_timeout
            )
        return out

    async def drain(self, dep: Deployment, slug: str, *, timeout: float) -> tuple[Figures, Figures]:
        """Enqueue a new issue of `slug` alone (timed), then one worker sends it all."""
        issue_id = await dep.create_issue(slug)
        seconds, recipients = await dep.enqueue_only(issue_id)
        enqueue: Figures = {"recipients": recipients, "seconds": seconds}
        if self.args.big_vacuum:
            enqueue["vacuum_seconds"] = await vacuum_deliveries(dep)
        self.sink.forget_before(self.sink.count)
        result = await dep.send(issue_id, workers=1, timeout=timeout, already_enqueued=recipients)
        return enqueue, result.as_dict()


async def vacuum_deliveries(dep: Deployment) -> float:
    """VACUUM ANALYZE delivery (outside a transaction, as it must run); its seconds."""
    async with dep.engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        t0 = time.monotonic()
        await autocommit.execute(text("VACUUM ANALYZE delivery"))
        return time.monotonic() - t0


async def background_load(seconds: float = 0.5) -> float:
    """Busy cores while the benchmark itself is idle: other work on the machine."""
    before = MachineCpu.read()
    await asyncio.sleep(seconds)
    return MachineCpu.read().busy_cores_since(before)


def median_of(values: list[Any]) -> Any:
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return statistics.median(numbers) if numbers else None


def flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten(f"{prefix}.{key}" if prefix else key, inner, into)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        into[prefix] = value


def summarise(repeats: list[dict[str, Figures]]) -> dict[str, dict[str, Any]]:
    """Per flattened figure: the median, min, max and every value over the repeats."""
    series: dict[str, list[Any]] = {}
    for one in repeats:
        flat: dict[str, Any] = {}
        flatten("", one, flat)
        for key, value in flat.items():
            series.setdefault(key, []).append(value)
    return {
        key: {"median": median_of(vals), "min": min(vals), "max": max(vals), "values": vals}
        for key, vals in sorted(series.items())
    }


class Run:
    """The figures of one run so far, written out after every repeat: an interrupted or
    timed-out run still leaves the repeats it finished (marked incomplete)."""

    def __init__(self, args: argparse.Namespace, command: str) -> None:
        self.args = args
        self.command = command
        self.started = dt.datetime.now(dt.UTC)
        self.repeats: list[dict[str, Figures]] = []
        self.big: Figures | None = None
        self.machine = report.machine_info()

    def result(self, bench: Bench, *, complete: bool) -> dict[str, Any]:
        args = self.args
        result: dict[str, Any] = {
            "started_at": self.started.isoformat(timespec="seconds"),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "complete": complete,
            "repeats_done": len(self.repeats),
            "command": self.command,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": {**self.machine, "load_average_at_end": os.getloadavg()[0]},
            "info": bench.info,
            "repeats": self.repeats,
            "summary": summarise(self.repeats),
            "ratios": report.ratios_per_repeat(self.repeats),
            "big": self.big,
            "failures": bench.failures,
        }
        result["targets"] = report.targets(result)
        return result

    def write(self, bench: Bench, *, complete: bool) -> str:
        result = self.result(bench, complete=complete)
        markdown = report.markdown(result)
        if not self.args.no_write:
            out: Path = self.args.out
            out.mkdir(parents=True, exist_ok=True)
            suffix = ("-big-vacuum" if self.args.big_vacuum else "-big") if self.args.big else ""
            name = f"{self.started.date()}-{'-'.join(bench.dbs)}{suffix}.json"
            # A --big run on its own (--only none) must not replace the main table,
            # nor the latency stage run alone (python -m bench.latency).
            table = f"latest{suffix}.md"
            if bench.only == {"latency"}:
                name, table = f"{self.started.date()}-latency.json", "latest-latency.md"
            (out / name).write_text(json.dumps(result, indent=2) + "\n")
            (out / table).write_text(markdown)
            if complete:
                print(f"wrote {out / name} and {out / table}")
        return markdown


async def run(args: argparse.Namespace, command: str) -> int:
    state = Run(args, command)
    with Processes() as processes, signals_as_exceptions():
        sink = SmtpSink(processes)
        bench = Bench(args, sink, processes)
        await bench.match_message_size()
        scenarios = bench.scenarios()
        print(
            f"smtp-sink on 127.0.0.1:{sink.port}; message {bench.message_size} bytes; "
            f"scenarios: {', '.join(n for n, _ in scenarios)}; repeats: {args.repeats}",
            flush=True,
        )
        try:
            for r in range(args.repeats):
                state.repeats.append(await run_repeat(bench, scenarios, r))
                if r + 1 < args.repeats:
                    state.write(bench, complete=False)
            if args.big:
                try:
                    state.big = await bench.big()
                    print(f"big: {json.dumps(state.big)}", flush=True)
                except Exception as exc:
                    bench.failures.append(f"big: {exc!r}")
                    traceback.print_exc()
        except (KeyboardInterrupt, asyncio.CancelledError):
            if state.repeats:
                state.write(bench, complete=False)
            raise
    print(state.write(bench, complete=True))
    return 1 if bench.failures else 0


async def run_repeat(
    bench: Bench, scenarios: list[tuple[str, Callable[[int], Awaitable[Figures]]]], r: int
) -> dict[str, Figures]:
    # Rotate the order each repeat: no measure always runs first or last.
    shift = r % len(scenarios) if scenarios else 0
    figures: dict[str, Figures] = {}
    for name, scenario in scenarios[shift:] + scenarios[:shift]:
        background = await background_load()
        t0 = time.monotonic()
        try:
            figures[name] = await scenario(r)
            figures[name]["background_busy_cores"] = background
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise
        except Exception as exc:  # one broken measure must not lose the others
            bench.failures.append(f"repeat {r + 1} {name}: {exc!r}")
            traceback.print_exc()
        print(
            f"[{r + 1}/{bench.args.repeats}] {name}: {time.monotonic() - t0:.1f} s "
            f"{report.one_line(name, figures.get(name))}",
            flush=True,
        )
    return figures


def main(argv: list[str] | None = None, command: str | None = None) -> None:
    """`bench/run`; bench.latency calls it with its own options (`--only latency`)."""
    args = parse_args(argv)
    command = command or " ".join(["bench/run", *map(shlex.quote, sys.argv[1:])])
    os.chdir(Path(__file__).resolve().parent.parent)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        sys.exit(asyncio.run(run(args, command)))
    except KeyboardInterrupt:
        print("interrupted; every process stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
