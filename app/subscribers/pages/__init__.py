"""Public pages (no key): subscribe form and POST, confirm, unsubscribe (RFC 8058).

Every page is a Jinja2 template that works without JavaScript; every POST also answers
JSON. Bodies are parsed by the pages rather than by FastAPI so that a form post that goes
wrong gets an HTML page back, never FastAPI's JSON error. One module per screen; what to
do with a request is decided by the services (signup, service).
"""

from __future__ import annotations

from fastapi import APIRouter

from app.subscribers.pages import confirm, subscribe, unsubscribe

router = APIRouter(include_in_schema=True, tags=["public pages"])
for _screen in (subscribe, confirm, unsubscribe):
    router.include_router(_screen.router)
