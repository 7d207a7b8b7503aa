"""HTTP plumbing every page shares: security headers, HEAD answered as GET, HTML dates.

Both middlewares are plain ASGI (no `BaseHTTPMiddleware`), so they add no task per
request and never buffer a streamed body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The policy every HTML page gets. Nothing loads from another host: scripts, styles and
# fonts come from Broadsheet itself and no inline script or style runs. A page that needs
# more (an issue page shows the editor's images from anywhere) sets only the directives
# it changes in its own Content-Security-Policy header; the others are filled in here.
DEFAULT_CSP: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
REFERRER_POLICY = "strict-origin-when-cross-origin"
# The development mail catcher shows caught emails (inline styles and all) in srcdoc
# frames, which inherit the page's policy; it runs only under `broadsheet dev`.
UNGUARDED_PREFIXES = ("/_dev/",)


def html_datetime(when: datetime) -> str:
    """A moment as RFC 3339 in UTC to the second, for `<time datetime>` and Atom.

    HTML allows at most three fractional digits and Python's isoformat() writes six, so
    every date a page or feed shows as machine-readable text goes through here.
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_csp(policy: str) -> dict[str, str]:
    directives: dict[str, str] = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            directives.setdefault(name.lower(), value.strip())
    return directives


def merge_csp(own: str | None, defaults: Mapping[str, str] = DEFAULT_CSP) -> str:
    """The default policy with the page's own directives in place of the defaults."""
    merged = dict(defaults)
    merged.update(parse_csp(own or ""))
    return "; ".join(f"{name} {value}".strip() for name, value in merged.items())


def csp_header(**directives: str) -> dict[str, str]:
    """Headers for a page that changes some directives: `csp_header(img_src="'self' https:")`."""
    policy = "; ".join(f"{name.replace('_', '-')} {value}" for name, value in directives.items())
    return {"Content-Security-Policy": policy}


PAGE_HEADERS = {
    "Content-Security-Policy": merge_csp(None),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": REFERRER_POLICY,
}


def _is_html(headers: MutableHeaders) -> bool:
    return headers.get("content-type", "").lower().startswith("text/html")


class SecurityHeaders:
    """`nosniff` and a Referrer-Policy on every response; the full CSP on every HTML one.

    A response that sets its own Referrer-Policy keeps it (token pages send no referrer
    at all); one that sets some CSP directives gets the defaults for the rest.
    """

    def __init__(self, app: ASGIApp, *, unguarded: Iterable[str] = UNGUARDED_PREFIXES) -> None:
        self.app = app
        self.unguarded = tuple(unguarded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).startswith(self.unguarded):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if "referrer-policy" not in headers:
                    headers["Referrer-Policy"] = REFERRER_POLICY
                if _is_html(headers):
                    headers["Content-Security-Policy"] = merge_csp(
                        headers.get("content-security-policy")
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """Answer HEAD like GET, without the body (RFC 9110 section 9.3.2).

    FastAPI routes declared with GET answer HEAD with 405. The request is passed on as a
    GET, so routing, the status and every header (Content-Length included) are the GET's;
    the body is dropped here, whatever server or test transport runs the app.
    """

    def __init__(self, app: ASGIApp, *, skip: Iterable[str] = ()) -> None:
        self.app = app
        self.skip = tuple(skip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "HEAD"
            or str(scope["path"]).startswith(self.skip)
        ):
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # swallow the parts; the last one ends the response
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_without_body)
