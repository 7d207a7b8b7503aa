from __future__ import annotations

from app.kit.errors import BroadsheetError


class UnsupportedMediaType(BroadsheetError):
    status_code = 415
