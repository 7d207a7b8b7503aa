"""Summarise a py-spy speedscope file (from `bench/run --profile`) as text.

    .venv/bin/python -m bench.profile bench/results/profiles/FILE.speedscope.json [--top 30]

Prints, per thread, the functions with the most samples on top of the stack (self) and
anywhere in the stack (inclusive), as percentages of that thread's samples.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _top(counts: dict[int, float], n: int) -> list[tuple[int, float]]:
    return sorted(counts.items(), key=lambda item: -item[1])[:n]


def summarise(data: dict[str, Any], top: int) -> str:
    frames = data["shared"]["frames"]

    def label(index: int) -> str:
        frame = frames[index]
        where = str(frame.get("file", ""))
        for marker in ("site-packages/", "/work/main/", "python3.11/"):
            if marker in where:
                where = where.split(marker, 1)[1]
        return f"{frame['name']} ({where}:{frame.get('line', '?')})"

    out: list[str] = []
    for profile in data["profiles"]:
        samples: list[list[int]] = profile["samples"]
        weights: list[float] = profile.get("weights") or [1.0] * len(samples)
        total = sum(weights)
        if not total:
            continue
        self_time: dict[int, float] = {}
        inclusive: dict[int, float] = {}
        for stack, weight in zip(samples, weights, strict=True):
            if stack:
                self_time[stack[-1]] = self_time.get(stack[-1], 0.0) + weight
            for index in set(stack):
                inclusive[index] = inclusive.get(index, 0.0) + weight
        out.append(f"== {profile.get('name', 'thread')}: {total:.0f} samples")
        out.append("-- self")
        out += [f"{w / total * 100:5.1f}%  {label(i)}" for i, w in _top(self_time, top)]
        out.append("-- inclusive")
        out += [f"{w / total * 100:5.1f}%  {label(i)}" for i, w in _top(inclusive, top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(summarise(json.loads(args.file.read_text()), args.top))


if __name__ == "__main__":
    main()
