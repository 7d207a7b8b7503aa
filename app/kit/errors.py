"""Domain errors that carry their HTTP status; one handler in app.main renders them."""

from __future__ import annotations

from typing import Any


class BroadsheetError(Exception):
    status_code = 400

    def __init__(self, detail: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.detail = detail
        self.headers = headers


class NotFound(BroadsheetError):
    status_code = 404


class Conflict(BroadsheetError):
    status_code = 409


class Invalid(BroadsheetError):
    """422 with a detail list naming the field, like FastAPI's own validation errors."""

    status_code = 422

    def __init__(
        self, field: str | tuple[str | int, ...], message: str, *, where: str = "body"
    ) -> None:
        loc = (field,) if isinstance(field, str) else field
        super().__init__([{"loc": [where, *loc], "msg": message, "type": "value_error"}])
        self.message = message


class Unauthorized(BroadsheetError):
    status_code = 401

    def __init__(self, detail: str = "missing or invalid API key") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(BroadsheetError):
    status_code = 403


class TooManyRequests(BroadsheetError):
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "too many requests, try again later", headers={"Retry-After": str(retry_after)}
        )
        self.retry_after = retry_after


class PayloadTooLarge(BroadsheetError):
    status_code = 413


class BadRequest(BroadsheetError):
    status_code = 400
