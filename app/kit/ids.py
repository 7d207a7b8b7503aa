"""Row ids in paths: positive and within a 64-bit integer, else 422 (never a driver error)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_ID = 2**63 - 1

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
