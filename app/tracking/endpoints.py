"""Public tracking endpoints: the open pixel and the click redirect (SPEC section 3)."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import RedirectResponse, Response

from app.kit.deps import SessionDep, SignerDep
from app.tracking import service

router = APIRouter(tags=["tracking"])

# A 1x1 transparent GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "0",
}
Token = Annotated[str, Path()]


@router.get("/t/o/{token}", response_class=Response)
async def open_pixel(token: Token, session: SessionDep, signer: SignerDep) -> Response:
    """Always the pixel, whatever the token: a bad one just records nothing."""
    await service.record_open(session, signer, token)
    return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)


@router.get("/t/c/{token}", response_class=RedirectResponse, status_code=302)
async def click(token: Token, session: SessionDep, signer: SignerDep) -> RedirectResponse:
    url = await service.resolve_click(session, signer, token)
    return RedirectResponse(url, status_code=302, headers=NO_CACHE)
