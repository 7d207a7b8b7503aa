"""Errors as a page for browsers and as JSON for API clients.

A request gets HTML when it accepts `text/html` (browsers send it with every page load)
and is not for the API under `/api/`; everything else keeps `{"detail": ...}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from app.pages.templates import templates

API_PREFIX = "/api/"

# What a reader is told for each status; the technical detail follows in small print.
_TITLES: dict[int, tuple[str, str]] = {
    400: ("This request is not valid", "The address or the form sent was not understood."),
    401: ("Sign-in needed", "This page needs a key or a sign-in."),
    403: ("Not allowed", "You may not open this page."),
    404: (
        "Page not found",
        "There is nothing at this address. Check the link you followed, or start again "
        "from the home page.",
    ),
    405: ("This page cannot do that", "This address does not answer that kind of request."),
    409: ("This cannot be done now", "The request conflicts with the current state."),
    413: ("Too much data", "What was sent is larger than this site accepts."),
    422: ("This address is not valid", "A part of the address or the form is not valid."),
    429: ("Too many requests", "Please wait a little and try again."),
    503: ("Temporarily unavailable", "The site cannot answer right now. Try again shortly."),
}


def wants_html(request: Request) -> bool:
    if request.url.path.startswith(API_PREFIX):
        return False
    return "text/html" in request.headers.get("accept", "").lower()


def title_for(status_code: int) -> tuple[str, str]:
    if status_code in _TITLES:
        return _TITLES[status_code]
    if status_code >= 500:
        return ("Something went wrong", "The site could not answer this request.")
    return ("This request could not be answered", "Check the address and try again.")


def error_page(
    request: Request,
    status_code: int,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    title, explanation = title_for(status_code)
    return templates.TemplateResponse(
        request,
        "error.html",
        {
            "newsletter": None,
            "noindex": True,
            "status_code": status_code,
            "title": title,
            "explanation": explanation,
            "detail": detail,
        },
        status_code=status_code,
        headers=dict(headers) if headers else None,
    )


def error_response(
    request: Request,
    status_code: int,
    detail: Any,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The one error answer: a page for a browser, `{"detail": ...}` for everyone else."""
    if wants_html(request):
        return error_page(
            request, status_code, detail if isinstance(detail, str) else None, headers
        )
    return JSONResponse(
        {"detail": detail}, status_code=status_code, headers=dict(headers) if headers else None
    )
