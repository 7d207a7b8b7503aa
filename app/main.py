"""The ASGI application: routers, error handlers, limits and lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__
from app.kit.db import create_engine, create_sessionmaker
from app.kit.errors import BroadsheetError
from app.kit.limits import BodySizeLimit
from app.kit.tokens import Signer
from app.kit.web import PAGE_HEADERS, HeadAsGet, SecurityHeaders
from app.pages.errors import error_page, error_response, wants_html
from app.settings import Settings

logger = logging.getLogger("broadsheet")

STATIC_DIR = __file__.rsplit("/", 1)[0] + "/static"


def create_app(settings: Settings, *, engine: AsyncEngine | None = None) -> FastAPI:
    """Build the application; `engine` lets tests and `broadsheet dev` share one."""
    owns_engine = engine is None
    engine = engine or create_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_engine:
            await engine.dispose()

    app = FastAPI(
        title="Broadsheet",
        version=__version__,
        description="Self-hosted email newsletter delivery.",
        lifespan=lifespan,
        # /docs is served by app.pages.docs from Broadsheet's own files, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.signer = Signer(settings.secret, settings.previous_secrets)

    _install_error_handlers(app)
    _include_routers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(
        BodySizeLimit,
        limit=settings.max_body_bytes,
        large_limit=settings.max_import_bytes,
        large_suffixes=("/subscribers/import",),
    )
    app.add_middleware(SecurityHeaders)
    # Tracking links count a GET as an open or a click; a HEAD (link checkers) must not.
    app.add_middleware(HeadAsGet, skip=("/t/",))
    return app


def _include_routers(app: FastAPI) -> None:
    from app import admin, health
    from app.delivery import endpoints as delivery
    from app.issues import endpoints as issues
    from app.issues import pages as issue_pages
    from app.keys import endpoints as keys
    from app.newsletters import endpoints as newsletters
    from app.pages import docs, home
    from app.scheduling import endpoints as scheduling
    from app.subscribers import endpoints as subscribers
    from app.subscribers import pages as subscriber_pages
    from app.tracking import endpoints as tracking
    from app.tracking import webhooks

    for module in (
        home,
        docs,
        health,
        keys,
        newsletters,
        subscribers,
        subscriber_pages,
        issues,
        issue_pages,
        delivery,
        scheduling,
        tracking,
        webhooks,
    ):
        app.include_router(module.router)
    docs.mount_assets(app)
    admin.install(app)


def _install_error_handlers(app: FastAPI) -> None:
    # Every handler answers through error_response: a page for a browser on the site's
    # pages, {"detail": ...} for the API and every other client.
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not wants_html(request) or exc.status_code < 400:
            return await http_exception_handler(request, exc)
        # Starlette's own 404 and 405 carry only the status phrase, said by the page already.
        detail = None if exc.detail == HTTPStatus(exc.status_code).phrase else exc.detail
        return error_response(request, exc.status_code, detail, exc.headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        # A bug. Starlette still logs it and re-raises after this answer; a browser gets
        # a page like any other error (this runs outside the middlewares, so the page's
        # headers are set here), everyone else Starlette's plain text.
        if wants_html(request):
            return error_page(request, 500, headers=PAGE_HEADERS)
        return PlainTextResponse("Internal Server Error", status_code=500)

    @app.exception_handler(BroadsheetError)
    async def _domain_error(request: Request, exc: BroadsheetError) -> Response:
        return error_response(request, exc.status_code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's default echoes the input back; bytes and very large inputs are dropped
        # so the error body is always valid JSON and never huge.
        errors = []
        for error in exc.errors():
            item = {k: error[k] for k in ("loc", "msg", "type") if k in error}
            item["loc"] = [str(part) for part in item.get("loc", ())]
            errors.append(item)
        return error_response(request, 422, errors)

    _install_database_error_handlers(app)


def _install_database_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(ConnectionError)
    async def _database_unavailable(request: Request, exc: Exception) -> Response:
        # The database is down, restarting, locked past the busy timeout, or out of
        # connections: nothing was stored, and the client may try again. Not a bug, so
        # not a 500; the detail names the condition without echoing driver messages.
        logger.warning(
            "database unavailable for %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return error_response(
            request,
            503,
            "the database is unavailable, nothing was stored; try again shortly",
            {"Retry-After": "5"},
        )

    @app.exception_handler(DataError)
    async def _out_of_range(request: Request, exc: DataError) -> Response:
        return error_response(
            request, 422, "a value is out of range or of the wrong kind for the database"
        )
