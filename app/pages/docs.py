"""The interactive API documentation at `/docs`, served entirely by Broadsheet.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script, so
it is blank offline and needs `unsafe-inline` under a CSP. Here Swagger UI's files come
from the `fastapi-offline` package (Swagger UI's own dist files) and the start-up script
is a static file that reads the schema's address from the page. Swagger UI is
Apache-2.0 (SmartBear); fastapi-offline, which packages it, is MIT.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.pages.templates import templates

ASSETS_PATH = "/docs/assets"
ASSETS_PACKAGE = ("fastapi_offline", "static")

router = APIRouter(include_in_schema=False)


def mount_assets(app: FastAPI) -> None:
    app.mount(ASSETS_PATH, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return templates.TemplateResponse(
        request,
        "docs.html",
        {
            "title": f"{request.app.title} API",
            "openapi_url": f"{root}{request.app.openapi_url}",
            "assets": f"{root}{ASSETS_PATH}",
        },
    )
