"""Figures to ratios, targets (issue 6), machine facts, and the Markdown table."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = [
    "aiosmtplib",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "fastapi",
    "uvicorn",
    "uvloop",
    "jinja2",
    "premailer",
    "pydantic",
    "httptools",
]
DB_LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return float(a) / float(b)
    return None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def ratios_per_repeat(repeats: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Ratios within each repeat (same minute, same machine state), then their median."""
    series: dict[str, list[float | None]] = {}

    def add(name: str, value: float | None) -> None:
        series.setdefault(name, []).append(value)

    for figures in repeats:
        raw = _get(figures, "raw", "msgs_per_s")
        add("raw_vs_smtp_source", _ratio(raw, _get(figures, "source", "msgs_per_s")))
        add("pipelined_vs_raw", _ratio(_get(figures, "pipelined", "msgs_per_s"), raw))
        add(
            "pipelined_cpu_vs_raw",
            _ratio(
                _get(figures, "pipelined", "cpu_ms_per_msg"), _get(figures, "raw", "cpu_ms_per_msg")
            ),
        )
        for db in ("sqlite", "postgresql"):
            e2e = _get(figures, db, "send", "msgs_per_s")
            if e2e is None:
                continue
            add(f"{db}_vs_raw", _ratio(e2e, raw))
            add(f"{db}_vs_naive", _ratio(e2e, _get(figures, "naive", "msgs_per_s")))
            add(f"{db}_vs_peer", _ratio(e2e, _get(figures, "peer", "msgs_per_s")))
            add(f"{db}_vs_smtp_source", _ratio(e2e, _get(figures, "source", "msgs_per_s")))
            add(
                f"{db}_cpu_vs_raw",
                _ratio(
                    _get(figures, db, "send", "worker_cpu_ms_per_msg"),
                    _get(figures, "raw", "cpu_ms_per_msg"),
                ),
            )
        for rtt_key, at in (_get(figures, "latency") or {}).items():
            if not isinstance(at, dict):
                continue  # background_busy_cores
            add(
                f"latency_{rtt_key}_vs_smtp_source",
                _ratio(_get(at, "broadsheet", "msgs_per_s"), _get(at, "source", "msgs_per_s")),
            )
        add(
            "postgresql_two_vs_one_worker",
            _ratio(
                _get(figures, "postgresql", "send_two_workers", "msgs_per_s"),
                _get(figures, "postgresql", "send", "msgs_per_s"),
            ),
        )
    return {
        name: {"median": _median(values), "values": values}
        for name, values in series.items()
        if any(v is not None for v in values)
    }


@dataclass
class Row:
    measure: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: str = ""


def _fmt(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "n/a"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".strip()


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def _m(result: dict[str, Any], key: str) -> Any:
    return _get(result, "summary", key, "median")


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    """Issue 6's targets, one row each, from the medians and the same-run ratios."""
    rows: list[Row] = []
    ratios = result["ratios"]

    def r(name: str) -> float | None:
        value = _get(ratios, name, "median")
        return float(value) if value is not None else None

    raw = _m(result, "raw.msgs_per_s")
    naive = _m(result, "naive.msgs_per_s")
    peer = _m(result, "peer.msgs_per_s")
    source = _m(result, "source.msgs_per_s")
    if source is not None:
        rows.append(
            Row("smtp-source, 16 sessions (C client, no pipelining)", _fmt(source, "msg/s"))
        )
    if raw is not None:
        rows.append(
            Row(
                "raw aiosmtplib, prebuilt bytes",
                _fmt(raw, "msg/s"),
                baseline=f"smtp-source {_fmt(source)}",
                ratio=_fmt(r("raw_vs_smtp_source"), "×", 2),
            )
        )
        rows.append(
            Row(
                "raw aiosmtplib, client CPU per message",
                _fmt(_m(result, "raw.cpu_ms_per_msg"), "ms", 3),
            )
        )
    pipelined = _m(result, "pipelined.msgs_per_s")
    if pipelined is not None:
        rows.append(
            Row(
                "pipelined asyncio client without aiosmtplib, same bytes (headroom, no target)",
                _fmt(pipelined, "msg/s"),
                baseline=f"raw {_fmt(raw)}",
                ratio=_fmt(r("pipelined_vs_raw"), "×", 2),
            )
        )
        rows.append(
            Row(
                "pipelined asyncio client, CPU per message",
                _fmt(_m(result, "pipelined.cpu_ms_per_msg"), "ms", 3),
                baseline=f"raw {_fmt(_m(result, 'raw.cpu_ms_per_msg'), 'ms', 3)}",
                ratio=_fmt(r("pipelined_cpu_vs_raw"), "×", 2),
            )
        )
    if naive is not None:
        rows.append(
            Row("naive loop (premailer + EmailMessage per recipient)", _fmt(naive, "msg/s"))
        )
    if peer is not None:
        rows.append(Row("django-newsletter 1.2.1 submit_newsletter", _fmt(peer, "msg/s")))
    for db in ("sqlite", "postgresql"):
        label = DB_LABEL[db]
        e2e = _m(result, f"{db}.send.msgs_per_s")
        if e2e is None:
            continue
        vs_raw = r(f"{db}_vs_raw")
        rows.append(
            Row(
                f"{label}: end to end, 1 worker, request to all final",
                _fmt(e2e, "msg/s"),
                baseline=f"raw {_fmt(raw)}",
                ratio=_fmt(vs_raw, "×", 2),
                target="≥ 1,800/s and ≥ 0.85× raw",
                met=_met(e2e >= 1800 and vs_raw is not None and vs_raw >= 0.85),
            )
        )
        rows.append(
            Row(
                f"{label}: end to end, request to last message accepted",
                _fmt(_m(result, f"{db}.send.msgs_per_s_sink"), "msg/s"),
            )
        )
        vs_naive = r(f"{db}_vs_naive")
        rows.append(
            Row(
                f"{label}: vs naive loop",
                _fmt(e2e, "msg/s"),
                baseline=f"naive {_fmt(naive)}",
                ratio=_fmt(vs_naive, "×", 1),
                target="≥ 25×",
                met=_met(None if vs_naive is None else vs_naive >= 25),
            )
        )
        vs_peer = r(f"{db}_vs_peer")
        if vs_peer is not None:
            rows.append(
                Row(
                    f"{label}: vs django-newsletter",
                    _fmt(e2e, "msg/s"),
                    baseline=f"django-newsletter {_fmt(peer)}",
                    ratio=_fmt(vs_peer, "×", 1),
                    target="≥ 7×",
                    met=_met(vs_peer >= 7),
                )
            )
        cpu = _m(result, f"{db}.send.worker_cpu_ms_per_msg")
        rows.append(
            Row(
                f"{label}: worker CPU per message",
                _fmt(cpu, "ms", 3),
                baseline=f"raw {_fmt(_m(result, 'raw.cpu_ms_per_msg'), 'ms', 3)}",
                ratio=_fmt(r(f"{db}_cpu_vs_raw"), "×", 2),
            )
        )
        db_cpu = _m(result, f"{db}.send.database_cpu_ms_per_msg")
        if db_cpu is not None:
            rows.append(Row(f"{label}: database server CPU per message", _fmt(db_cpu, "ms", 3)))
        first = _m(result, f"{db}.send.first_message_s")
        rows.append(
            Row(
                f"{label}: first message on the wire after the send request",
                _fmt(first, "s", 3),
                target="≤ 1 s",
                met=_met(None if first is None else first <= 1.0),
            )
        )
        rows.append(
            Row(
                f"{label}: enqueue {_fmt(_m(result, f'{db}.send.recipients'))} (the send request)",
                _fmt(_m(result, f"{db}.send.enqueue_s"), "s", 3),
            )
        )
        big = _m(result, f"{db}.enqueue_big.seconds")
        rows.append(
            Row(
                f"{label}: enqueue {_fmt(_m(result, f'{db}.enqueue_big.recipients'))} (start_send)",
                _fmt(big, "s", 3),
                target="< 1 s",
                met=_met(None if big is None else big < 1.0),
            )
        )
        rss = _m(result, f"{db}.send.worker_peak_rss_mb")
        recipients = _fmt(_m(result, f"{db}.send.recipients"))
        rows.append(
            Row(
                f"{label}: worker peak RSS ({recipients} recipients)",
                _fmt(rss, "MB", 1),
                target="< 150 MB",
                met=_met(None if rss is None else rss < 150),
            )
        )
    two = r("postgresql_two_vs_one_worker")
    if two is not None:
        rows.append(
            Row(
                "PostgreSQL: two worker processes",
                _fmt(_m(result, "postgresql.send_two_workers.msgs_per_s"), "msg/s"),
                baseline=f"one worker {_fmt(_m(result, 'postgresql.send.msgs_per_s'))}",
                ratio=_fmt(two, "×", 2),
                target="≥ 1.5×",
                met=_met(two >= 1.5),
            )
        )
    big = result.get("big") or {}
    if big:
        enq = _get(big, "enqueue_1m", "seconds")
        rows.append(
            Row(
                f"PostgreSQL: enqueue {_fmt(_get(big, 'enqueue_1m', 'recipients'))} (start_send)",
                _fmt(enq, "s", 2),
                target="< 10 s",
                met=_met(None if enq is None else enq < 10),
            )
        )
        small_rss = _get(big, "send_10k", "worker_peak_rss_mb")
        big_rss = _get(big, "send_1m", "worker_peak_rss_mb")
        grow = _ratio(big_rss, small_rss)
        done = _get(big, "send_1m", "statuses", "sent")
        big_n = _get(big, "send_1m", "recipients")
        rows.append(
            Row(
                f"PostgreSQL: worker peak RSS, {_fmt(big_n)} recipients ({_fmt(done)} sent)",
                _fmt(big_rss, "MB", 1),
                baseline=f"10k: {_fmt(small_rss, 'MB', 1)}",
                ratio=_fmt(grow, "×", 2),
                target="< 150 MB, flat (≤ 1.2×)",
                met=_met(
                    None if grow is None or big_rss is None else big_rss < 150 and grow <= 1.2
                ),
            )
        )
        small_db = _get(big, "send_10k", "database_cpu_ms_per_msg")
        big_db = _get(big, "send_1m", "database_cpu_ms_per_msg")
        db_ratio = _ratio(big_db, small_db)
        vacuum = ", VACUUM ANALYZE after enqueue" if big.get("vacuum_after_enqueue") else ""
        rows.append(
            Row(
                f"PostgreSQL: database server CPU per message, {_fmt(big_n)} queued{vacuum}",
                _fmt(big_db, "ms", 3),
                baseline=f"10k: {_fmt(small_db, 'ms', 3)}",
                ratio=_fmt(db_ratio, "×", 2),
                target="≤ 1.5×",
                met=_met(None if db_ratio is None else db_ratio <= 1.5),
            )
        )
        rows.append(
            Row(
                f"PostgreSQL: first message of the {_fmt(big_n)} send after the worker is ready",
                _fmt(_get(big, "send_1m", "first_message_s"), "s", 2),
            )
        )
        rows.append(
            Row(
                f"PostgreSQL: {_fmt(big_n)}-recipient send, workers ready to all final",
                _fmt(_get(big, "send_1m", "msgs_per_s"), "msg/s"),
            )
        )
    rows += _latency_rows(result, r)
    rps = _m(result, "subscribe.requests_per_s")
    if rps is not None:
        p99 = _m(result, "subscribe.p99_ms")
        workers = _get(result, "options", "api_workers")
        connections = _get(result, "options", "wrk_connections")
        rows.append(
            Row(
                f"subscribe (PostgreSQL, {workers} API workers, wrk -c{connections})",
                _fmt(rps, "req/s"),
                target="≥ 500 req/s",
                met=_met(rps >= 500),
            )
        )
        rows.append(
            Row(
                "subscribe p50 / p99 latency",
                f"{_fmt(_m(result, 'subscribe.p50_ms'), 'ms', 1)} / {_fmt(p99, 'ms', 1)}",
                target="p99 < 50 ms",
                met=_met(None if p99 is None else p99 < 50),
            )
        )
        rows.append(Row("subscribe non-2xx answers", _fmt(_m(result, "subscribe.non_2xx"))))
    return [row.__dict__ for row in rows]


def _latency_rows(result: dict[str, Any], r: Any) -> list[Row]:
    """The latency stage (issue 14): per round trip, smtp-source and Broadsheet through the
    same delaying proxy; the target is a ratio between the two."""
    rows: list[Row] = []
    sessions = _get(result, "options", "pool_size")
    for rtt in _get(result, "options", "rtt") or []:
        at = f"latency.rtt_{rtt}"
        ours = _m(result, f"{at}.broadsheet.msgs_per_s")
        source = _m(result, f"{at}.source.msgs_per_s")
        if ours is None and source is None:
            continue
        where = f"{rtt} ms round trip (bench.proxy)" if rtt else "loopback, no proxy"
        messages = _fmt(_m(result, f"{at}.messages"))
        rows.append(
            Row(
                f"{where}: smtp-source -d -s {sessions}, {messages} messages", _fmt(source, "msg/s")
            )
        )
        ratio = r(f"latency_rtt_{rtt}_vs_smtp_source")
        need = 4.0 if rtt else 0.5
        rows.append(
            Row(
                f"{where}: Broadsheet, 1 worker, default settings, request to all final",
                _fmt(ours, "msg/s"),
                baseline=f"smtp-source -s {sessions} {_fmt(source)}",
                ratio=_fmt(ratio, "×", 2),
                target=f"≥ {need:g}×",
                met=_met(None if ratio is None else ratio >= need),
            )
        )
    return rows


def latency_line(figures: dict[str, Any]) -> str:
    """A progress line for one round trip of the latency stage."""
    source = _get(figures, "source", "msgs_per_s")
    ours = _get(figures, "broadsheet", "msgs_per_s")
    ratio = _ratio(ours, source)
    return (
        f"{figures['messages']:,} messages, smtp-source {_fmt(source, 'msg/s')}, "
        f"Broadsheet {_fmt(ours, 'msg/s')} ({_fmt(ratio, '×', 2)})"
    )


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    opts = result["options"]
    size = result["info"].get("message_bytes_baselines") or 0
    broadsheet = result["info"].get("message_bytes_broadsheet") or 0
    naive = result["info"].get("message_bytes_naive") or 0
    setting = (
        f"{opts['n']:,} subscribers per send, "
        f"{result['repeats_done']} interleaved repeats (medians; ratios taken within each repeat)"
        f"{'' if result['complete'] else ' (INCOMPLETE: the run stopped early)'}, "
        f"SMTP pool {opts['pool_size']}, into Postfix `smtp-sink` on 127.0.0.1. Broadsheet's "
        f"message for the ten-story issue is {broadsheet:,} bytes; smtp-source and raw "
        f"aiosmtplib send {size:,} bytes, the naive loop its own {naive:,}."
    )
    title = "# Broadsheet benchmark"
    if opts.get("only") == "latency":
        title = "# Broadsheet benchmark: sending across a network"
        setting = (
            f"{result['repeats_done']} interleaved repeats (medians; ratios taken within each "
            f"repeat){'' if result['complete'] else ' (INCOMPLETE: the run stopped early)'}. "
            f"At each round trip, smtp-source and one Broadsheet worker (SMTP pool "
            f"{opts['pool_size']}, {opts.get('latency_db')}) send {broadsheet:,}-byte messages "
            "through the same `bench.proxy` (half the round trip added each way) into Postfix "
            "`smtp-sink` on 127.0.0.1; at 0 ms, straight into the sink."
        )
    lines = [
        title,
        "",
        f"Run {result['started_at']} on {m['nproc']} × {m['cpu_model']}, {m['memory_gb']} GB, "
        f"Python {m['python']}, PostgreSQL {m.get('postgresql') or '?'}, SQLite {m['sqlite']}; "
        f"commit {m.get('commit') or '?'}.",
        "",
        f"Command: `{result['command']}` — {setting}",
        "",
        "| measure | value | baseline | ratio | target | met? |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["targets"]:
        lines.append(
            f"| {row['measure']} | {row['value']} | {row['baseline']} | {row['ratio']} "
            f"| {row['target']} | {row['met']} |"
        )
    background = [
        stats for key, stats in result["summary"].items() if key.endswith("background_busy_cores")
    ]
    if background:
        worst = max(stats["max"] for stats in background)
        typical = statistics.median(stats["median"] for stats in background)
        lines += [
            "",
            f"Other load on the machine, sampled for 0.5 s before each measure: median "
            f"{typical:.2f} busy cores, at most {worst:.2f} (of {m['nproc']}). Above about "
            "0.3, absolute figures are depressed; the same-repeat ratios much less.",
        ]
    if result["failures"]:
        lines += ["", "Failures in this run:", ""] + [f"- {f}" for f in result["failures"]]
    lines += [
        "",
        "<details><summary>Every figure (median [min – max])</summary>",
        "",
        "| figure | median | min | max |",
        "| --- | --- | --- | --- |",
    ]
    for key, stats in result["summary"].items():
        if key.endswith("worker_exit_codes") or ".statuses." in key and stats["max"] == 0:
            continue
        lines.append(
            f"| {key} | {_num(stats['median'])} | {_num(stats['min'])} | {_num(stats['max'])} |"
        )
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}"


def one_line(name: str, figures: dict[str, Any] | None) -> str:
    """A progress line for the terminal."""
    if not figures:
        return "(failed)"
    if name in ("source", "raw", "pipelined", "naive", "peer"):
        cpu = figures.get("cpu_ms_per_msg")
        return f"{figures['msgs_per_s']:,.0f} msg/s" + (f", {cpu:.3f} ms CPU/msg" if cpu else "")
    if name == "latency":
        return "; ".join(
            f"{at.get('rtt_ms')} ms: {latency_line(at)}"
            for at in figures.values()
            if isinstance(at, dict)
        )
    if name == "subscribe":
        return (
            f"{figures['requests_per_s']:,.0f} req/s, p50 {figures['p50_ms']:.1f} ms, "
            f"p99 {figures['p99_ms']:.1f} ms, non-2xx {figures['non_2xx']}"
        )
    parts = []
    for key in ("send", "send_two_workers"):
        send = figures.get(key)
        if send:
            parts.append(
                f"{key}: {_fmt(send['msgs_per_s'], 'msg/s')} "
                f"(sink {_fmt(send['msgs_per_s_sink'])}), "
                f"first {_fmt(send['first_message_s'], 's', 3)}, "
                f"enqueue {_fmt(send['enqueue_s'], 's', 3)}, "
                f"CPU {_fmt(send['worker_cpu_ms_per_msg'], 'ms', 3)}/msg, "
                f"RSS {_fmt(send['worker_peak_rss_mb'], 'MB', 1)}, {send['statuses']}"
            )
    if "enqueue_big" in figures:
        e = figures["enqueue_big"]
        parts.append(f"enqueue {e['recipients']:,}: {e['seconds']:.3f} s")
    return "; ".join(parts)


def machine_info() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    packages = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": memory_gb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _command(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-tAc",
                "SHOW server_version",
            ]
        ),
        "postfix": _command(["postconf", "-h", "mail_version"]),
        "wrk": _wrk_version(),
        "packages": packages,
        "commit": _command(["git", "rev-parse", "--short", "HEAD"]),
    }


def _command(args: list[str]) -> str | None:
    if not shutil.which(args[0]):
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
        if out.returncode == 0:
            return out.stdout.strip().split()[0] if out.stdout.strip() else None
    return None


def _wrk_version() -> str | None:
    wrk = shutil.which("wrk")
    if not wrk:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
        found = re.search(r"wrk (\S+)", out.stdout + out.stderr)
        return found.group(1) if found else None
    return None


def main() -> None:
    """Re-render the Markdown table of a results file: python -m bench.report FILE.json"""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.report")
    parser.add_argument("file", type=Path)
    args = parser.parse_args()
    result = json.loads(args.file.read_text())
    result["targets"] = targets(result)
    print(markdown(result), end="")


if __name__ == "__main__":
    main()
