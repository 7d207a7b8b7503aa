"""A newsletter's settings: `/admin/newsletters/new` and `/admin/newsletters/{slug}`.

Both forms save through the newsletters service with the REST API's own payloads
(`NewsletterCreate`, `NewsletterUpdate`), so a rule lives in one place; a refused value
comes back as the form again with the message next to its field (422, or 409 for a
slug that is taken), never a 500.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.accounts import service as accounts
from app.accounts.service import Viewer
from app.admin.deps import FormViewerDep, ViewerDep
from app.admin.web import redirect, render
from app.kit.clock import utcnow
from app.kit.cron import CronError, next_ticks
from app.kit.deps import SessionDep, SettingsDep
from app.kit.errors import Conflict
from app.models import Newsletter
from app.newsletters import service as newsletters
from app.newsletters.deps import NewsletterDep
from app.newsletters.schemas import NewsletterCreate, NewsletterUpdate
from app.settings import Settings

router = APIRouter(include_in_schema=False)

TEXT_FIELDS = (
    "slug",
    "name",
    "description",
    "from_name",
    "from_email",
    "reply_to",
    "postal_address",
    "schedule_cron",
    "timezone",
)
CHECKBOXES = ("double_opt_in", "track_opens", "track_clicks", "auto_send_upcoming")
NEXT_SENDS = 5
ZONES = sorted(available_timezones())

# Pydantic's wording for the checks people trip over, said as a person would.
_MESSAGES = {
    "missing": "This field is required.",
    "string_too_short": "This field is required.",
    "too_short": "This field is required.",
}
_SLUG_HINT = "Use lower-case letters, digits and single hyphens, e.g. the-weekly."


def form_values(form: Any) -> dict[str, Any]:
    """The newsletter fields of a submitted form (a box left unticked is False)."""
    values: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        raw = form.get(name)
        values[name] = raw if isinstance(raw, str) else ""
    for name in CHECKBOXES:
        values[name] = form.get(name) is not None
    if not values["reply_to"].strip():
        values["reply_to"] = None
    return values


def field_errors(exc: ValidationError) -> dict[str, str]:
    """{field: message} for the form, the first problem of each field."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "form"
        if field == "slug" and error["type"] == "string_pattern_mismatch":
            message = _SLUG_HINT
        else:
            message = _MESSAGES.get(error["type"], str(error["msg"]))
            message = message.removeprefix("Value error, ")
            message = message[:1].upper() + message[1:]
        errors.setdefault(field, message if message.endswith(".") else message + ".")
    return errors


def next_sends(newsletter: Newsletter, now: datetime) -> list[datetime]:
    """The next five cron ticks of the newsletter (UTC), none without a valid schedule."""
    if not newsletter.schedule_cron:
        return []
    try:
        ticks = next_ticks(newsletter.schedule_cron, newsletter.timezone, now, NEXT_SENDS)
    except (CronError, ValueError):
        return []
    return [tick.utc for tick in ticks]


def signup_snippet(settings: Settings, newsletter: Newsletter) -> str:
    """HTML to paste into a website: posts to the public subscribe endpoint."""
    action = escape(f"{settings.base_url.rstrip('/')}/newsletters/{newsletter.slug}/subscribe")
    name = escape(newsletter.name)
    return f"""<form method="post" action="{action}" accept-charset="utf-8">
  <label for="bs-email">Email address</label>
  <input id="bs-email" name="email" type="email" autocomplete="email" required>
  <label for="bs-name">Name (optional)</label>
  <input id="bs-name" name="name" type="text" autocomplete="name">
  <!-- Left empty by people; bots that fill it in are ignored. -->
  <div aria-hidden="true" style="position:absolute;left:-10000px">
    <label for="bs-website">Leave this field empty</label>
    <input id="bs-website" name="website" type="text" tabindex="-1" autocomplete="off">
  </div>
  <button type="submit">Subscribe to {name}</button>
</form>"""


def _new_page(
    request: Request,
    viewer: Viewer,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {"values": values, "errors": errors or {}, "zones": ZONES}
    return render(request, viewer, "admin/newsletter_new.html", context, status_code=status)


def _settings_page(
    request: Request,
    viewer: Viewer,
    settings: Settings,
    newsletter: Newsletter,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "newsletter": newsletter,
        "tab": "settings",
        "values": values or {name: getattr(newsletter, name) for name in TEXT_FIELDS + CHECKBOXES},
        "errors": errors or {},
        "zones": ZONES,
        "next_sends": next_sends(newsletter, utcnow()),
        "snippet": signup_snippet(settings, newsletter),
    }
    return render(request, viewer, "admin/newsletter_settings.html", context, status_code=status)


@router.get("/admin/newsletters/new")
async def new_form(request: Request, viewer: ViewerDep) -> Response:
    defaults: dict[str, Any] = dict.fromkeys(TEXT_FIELDS, "")
    defaults |= {"timezone": "UTC", "double_opt_in": True}
    return _new_page(request, viewer, defaults)


@router.post("/admin/newsletters/new")
async def create(request: Request, session: SessionDep, viewer: FormViewerDep) -> Response:
    values = form_values(await request.form())
    try:
        data = NewsletterCreate.model_validate(values)
        newsletter = await newsletters.create(session, data)
    except ValidationError as exc:
        return _new_page(request, viewer, values, field_errors(exc), 422)
    except Conflict as exc:
        return _new_page(request, viewer, values, {"slug": f"{exc.detail}."}, 409)
    await accounts.audit(
        session, viewer.actor, "newsletter.create", f"newsletter {newsletter.slug}"
    )
    return redirect(
        request,
        f"/admin/newsletters/{newsletter.slug}",
        f"{newsletter.name} is created. Next: share the signup form, or write the first issue.",
    )


@router.get("/admin/newsletters/{slug}")
async def settings_form(
    request: Request, settings: SettingsDep, viewer: ViewerDep, newsletter: NewsletterDep
) -> Response:
    return _settings_page(request, viewer, settings, newsletter)


@router.post("/admin/newsletters/{slug}")
async def save(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    viewer: FormViewerDep,
    newsletter: NewsletterDep,
) -> Response:
    values = form_values(await request.form())
    try:
        data = NewsletterUpdate.model_validate(values)
        saved = await newsletters.update(session, newsletter, data)
    except ValidationError as exc:
        errors = field_errors(exc)
        return _settings_page(
            request, viewer, settings, newsletter, values=values, errors=errors, status=422
        )
    except Conflict as exc:
        errors = {"slug": f"{exc.detail}."}
        return _settings_page(
            request, viewer, settings, newsletter, values=values, errors=errors, status=409
        )
    await accounts.audit(session, viewer.actor, "newsletter.update", f"newsletter {saved.slug}")
    return redirect(request, f"/admin/newsletters/{saved.slug}", "Settings saved.")
