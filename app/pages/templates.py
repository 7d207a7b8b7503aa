"""The Jinja2 environment of the site pages (app/templates, autoescaped)."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

from app.kit.web import html_datetime

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"

templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.filters["html_datetime"] = html_datetime
