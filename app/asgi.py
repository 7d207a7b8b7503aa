"""`app.asgi:app` for uvicorn and other ASGI servers; settings come from the environment."""

from __future__ import annotations

import sys

from app.main import create_app
from app.settings import SettingsError, load_settings

try:
    _settings = load_settings()
except SettingsError as exc:
    sys.stderr.write(f"error: {exc}\n")
    raise SystemExit(2) from None

app = create_app(_settings)
