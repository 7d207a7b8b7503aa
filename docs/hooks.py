"""MkDocs hook: pages include files generated elsewhere instead of copies of them.

A line `<!-- include: PATH -->` (PATH relative to the repository root) is replaced by that
file's Markdown, its first `# ` title dropped, so the benchmark tables in the manual are
always the ones `bench/run` last wrote. A missing file fails the build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r"^<!-- include: (?P<path>[^ ]+) -->$", re.MULTILINE)


def _included(match: re.Match[str]) -> str:
    path = (ROOT / match["path"]).resolve()
    if ROOT not in path.parents:
        raise ValueError(f"include outside the repository: {match['path']}")
    text = path.read_text(encoding="utf-8")
    if text.startswith("# "):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    return text.strip("\n")


def on_page_markdown(markdown: str, **_kwargs: Any) -> str:
    return INCLUDE.sub(_included, markdown)
