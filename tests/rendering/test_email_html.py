"""The HTML of every email: one inlining path, valid to the Nu checker but for the
documented email idioms, and a preheader hidden without low-contrast text."""

from __future__ import annotations

import re

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.rendering.inlining import inline_css
from app.rendering.markdown import render_markdown
from tests.factories import create_newsletter
from tests.rendering.emails import confirmation_email_html, issue_email_html
from tests.validators import vnu_check

# What the Nu checker may still say about an email, each for a reason: a mail client
# that ignores CSS (Outlook's Word engine above all) lays a table out by these.
# Each entry is (vnu's message, the reason it stays); anything else fails the test.
EMAIL_IDIOMS = {
    "The “width” attribute on the “table” element is obsolete.": (
        "Outlook sizes the 600 px column and the full-width wrapper by it, not by CSS"
    ),
    "The “cellpadding” attribute on the “table” element is obsolete.": (
        "without it Outlook and older webmails pad every layout cell"
    ),
    "The “cellspacing” attribute on the “table” element is obsolete.": (
        "without it Outlook and older webmails put gaps between layout cells"
    ),
    "The “border” attribute on the “table” element is obsolete.": (
        "border=0 keeps clients that default layout tables to a border from drawing one"
    ),
    "The “align” attribute on the “table” element is obsolete.": (
        "Outlook centres the column only by align, it ignores margin:auto"
    ),
    "The “align” attribute on the “td” element is obsolete.": (
        "Outlook centres the column's table inside the wrapper cell only by align"
    ),
    "The “bgcolor” attribute on the “table” element is obsolete.": (
        "keeps the page and column colours where a client strips style attributes"
    ),
}


def _is_idiom(message: str) -> bool:
    return any(message.startswith(idiom) for idiom in EMAIL_IDIOMS)


async def test_issue_and_confirmation_emails_have_no_vnu_errors_or_warnings_but_email_idioms(
    client: AsyncClient, session: AsyncSession, editor_headers: dict[str, str]
) -> None:
    paper = await create_newsletter(session)
    issue_html = await issue_email_html(client, session, editor_headers, paper)
    confirmation_html = await confirmation_email_html(client, session, paper)
    assert len(issue_html.encode()) < 102 * 1024  # Gmail clips larger messages

    messages = vnu_check(
        {"issue email": issue_html, "confirmation email": confirmation_html}, errors_only=False
    )

    problems = [
        str(m) for m in messages if m.kind in ("error", "warning") and not _is_idiom(m.message)
    ]
    assert problems == []


def _style(html: str, opening_tag: str) -> dict[str, str]:
    """The inlined `style` of the first element whose start tag matches `opening_tag`."""
    match = re.search(opening_tag + r"""[^>]*?\sstyle=(?:"([^"]*)"|'([^']*)')""", html)
    assert match is not None, f"no styled {opening_tag} in the email"
    style = match.group(1) or match.group(2)
    declarations = (part.split(":", 1) for part in style.split(";") if ":" in part)
    return {name.strip().lower(): value.strip().lower() for name, value in declarations}


def _rgb(colour: str) -> tuple[int, int, int]:
    named = {"white": "#ffffff", "black": "#000000"}
    value = named.get(colour, colour).lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    assert re.fullmatch(r"[0-9a-f]{6}", value), f"unexpected colour {colour!r}"
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _distance(one: str, other: str) -> float:
    """SpamAssassin's HTML_FONT_LOW_CONTRAST distance: under 12 it fires."""
    (r1, g1, b1), (r2, g2, b2) = _rgb(one), _rgb(other)
    return float(
        ((0.2126 * (r1 - r2)) ** 2 + (0.7152 * (g1 - g2)) ** 2 + (0.0722 * (b1 - b2)) ** 2) ** 0.5
    )


async def test_the_preheader_is_hidden_by_display_none_not_by_text_coloured_like_the_page(
    client: AsyncClient, session: AsyncSession, editor_headers: dict[str, str]
) -> None:
    paper = await create_newsletter(session)
    emails = {
        "issue": await issue_email_html(client, session, editor_headers, paper),
        "confirmation": await confirmation_email_html(client, session, paper),
    }
    for name, html in emails.items():
        preheader = _style(html, r'<div class="preheader"')
        body = _style(html, r"<body")
        assert preheader.get("display") == "none", name
        assert preheader.get("max-height") == "0", name
        assert preheader.get("overflow") == "hidden", name
        # No colour or size games: the text keeps the body's colour and size.
        assert "color" not in preheader, name
        assert "font-size" not in preheader, name
        background = body["background-color"]
        text = body.get("color", "#000000")
        assert _distance(text, background) > 100, name


def test_one_inlining_path_keeps_the_doctype_and_important_media_rules() -> None:
    html = (
        "<!doctype html>\n<html lang='en'><head><title>t</title><style>"
        ".box { width: 600px; background-color: #fff; text-align: center; }"
        " code { background-color: #eee; } img { width: 100%; height: auto; }"
        " @media only screen and (max-width: 620px) { .box { width: 100% !important; } }"
        "</style></head><body><table class='box'><tr><td><code>x</code>"
        "<img src='https://img.example.org/a.png' alt='a'></td></tr></table></body></html>"
    )

    inlined = inline_css(html)

    assert inlined.startswith("<!DOCTYPE html>\n<html")
    assert inlined.count("<!DOCTYPE") == 1
    (style_block,) = re.findall(r"<style>(.*?)</style>", inlined, re.S)
    assert "@media" in style_block
    assert "width: 100% !important" in style_block
    assert 'style="width:600px; background-color:#fff; text-align:center"' in inlined
    # No CSS copied into attributes: no bgcolor on <code>, no width="100%" on <img>.
    assert "bgcolor" not in inlined
    assert 'width="100%"' not in inlined
    assert 'height="auto"' not in inlined
    assert "align=" not in inlined


def test_an_editor_image_keeps_a_pixel_width_and_loses_a_percent_or_auto_one() -> None:
    html = render_markdown(
        '<img src="https://img.example.org/a.png" alt="a" width="100%" height="auto">\n'
        '<img src="https://img.example.org/b.png" alt="b" width="300" height="200">'
    )

    assert '<img src="https://img.example.org/a.png" alt="a">' in html
    assert 'width="300" height="200"' in html
