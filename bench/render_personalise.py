"""Per-issue rendering versus per-recipient personalising (run by hand, no assertions).

    .venv/bin/python -m bench.render_personalise [--rounds 7]

Prints medians. The contract (issue 3): personalising one copy costs under 5% of
rendering the issue once.
"""

from __future__ import annotations

import argparse
import binascii
import email.policy
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from app.kit.ids import message_id_tag
from app.kit.tokens import Signer
from app.models import Issue, Newsletter, Story, Subscriber
from app.rendering.issue import render_issue
from app.rendering.prepared import Recipient, freeze_issue, prepare_issue
from app.rendering.transactional import build_message
from app.settings import Settings, load_settings
from app.subscribers.emails import confirmation_subject, render_confirmation

BODY = (
    "Researchers published *new findings* on Tuesday, with [the full paper]"
    "(https://example.org/paper?id={i}) and a summary that runs on for a while so the "
    "paragraph wraps over several lines, as real ones do. A second sentence adds a "
    "[related link](https://example.net/related/{i}).\n\n"
    "- the first point\n- the second point\n\n> A quote from someone involved.\n"
)

# What a worker reads from its database once (app.kit.ids.installation_tag).
INSTALLATION = message_id_tag("bench installation")


def _settings(**overrides: Any) -> Settings:
    return load_settings(
        database_url="sqlite+aiosqlite:///unused.db",
        base_url="https://news.example.com",
        secret_key="bench-secret-0123456789abcdef",
        _env_file=None,
        **overrides,
    )


def _issue(track: bool) -> tuple[Newsletter, Issue, list[Story]]:
    newsletter = Newsletter(
        id=1,
        slug="weekly",
        name="The Weekly",
        from_name="The Weekly Desk",
        from_email="desk@news.example.com",
        reply_to=None,
        postal_address="1 Fleet Street\nLondon",
        timezone="UTC",
        track_opens=track,
        track_clicks=track,
        template="default",
    )
    issue = Issue(
        id=7,
        newsletter_id=1,
        number=12,
        subject="This week: findings, quotes & more",
        preheader="Five minutes of reading",
        intro="Welcome to **this week's** issue.",
        outro="Thanks for reading.",
        status="sending",
    )
    stories = [
        Story(
            id=i,
            issue_id=7,
            position=i,
            title=f"Story {i}: a headline",
            body=BODY.format(i=i),
            url=f"https://example.org/stories/{i}",
            source="The Example Times",
            image_url=f"https://img.example.org/{i}.jpg",
            image_alt=None,
        )
        for i in range(10)
    ]
    return newsletter, issue, stories


def median_us(func: Callable[[], object], *, number: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            func()
        samples.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rounds = args.rounds
    signer = Signer(b"bench-secret-0123456789abcdef")
    settings = _settings()
    reader = Recipient(123456, 654321, "reader@example.org", "Zoë O'Brien")
    rows: list[tuple[str, float]] = []

    newsletter, issue, stories = _issue(track=False)
    render_issue(issue, newsletter, stories, settings)  # warm up imports and templates
    render = median_us(
        lambda: freeze_issue(issue, newsletter, stories, settings), number=5, rounds=rounds
    )
    rows.append(("render the issue once (freeze_issue: Markdown, Jinja2, premailer)", render))
    rows.append(
        (
            "prepare_issue (once per worker)",
            median_us(
                lambda: prepare_issue(
                    issue, newsletter, settings, signer, installation=INSTALLATION
                ),
                number=20,
                rounds=rounds,
            ),
        )
    )
    prepared = prepare_issue(issue, newsletter, settings, signer, installation=INSTALLATION)
    size = len(prepared.personalise(reader))
    plain = median_us(lambda: prepared.personalise(reader), number=2000, rounds=rounds)
    rows.append(("personalise one copy, no tracking", plain))

    t_newsletter, t_issue, t_stories = _issue(track=True)
    freeze_issue(t_issue, t_newsletter, t_stories, settings)
    tracked = prepare_issue(t_issue, t_newsletter, settings, signer, installation=INSTALLATION)
    rows.append(
        (
            f"personalise one copy, opens + clicks tracked ({len(tracked.links)} links)",
            median_us(lambda: tracked.personalise(reader), number=1000, rounds=rounds),
        )
    )

    # The alternative the brief asked about: substitute into str, then encode each part
    # with binascii.b2a_qp and build the headers per message.
    rendered = render_issue(issue, newsletter, stories, settings)

    def b2a_alternative() -> bytes:
        html = rendered.html.replace(rendered.placeholder("NAME"), "Zo&euml;").replace(
            rendered.placeholder("UNSUBSCRIBE_URL"), "https://news.example.com/unsubscribe/x"
        )
        text = rendered.text.replace(rendered.placeholder("NAME"), "Zoë")
        return binascii.b2a_qp(text.encode(), istext=True) + binascii.b2a_qp(
            html.encode(), istext=True
        )

    rows.append(
        (
            "(alternative) str.replace + binascii.b2a_qp of both parts",
            median_us(b2a_alternative, number=500, rounds=rounds),
        )
    )

    def email_message() -> bytes:
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = "The Weekly Desk <desk@news.example.com>"
        msg["To"] = "Zoë O'Brien <reader@example.org>"
        msg["Subject"] = issue.subject
        msg.set_content(rendered.text, cte="quoted-printable")
        msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
        return msg.as_bytes()

    rows.append(
        (
            "(for comparison) build an EmailMessage + as_bytes()",
            median_us(email_message, number=50, rounds=rounds),
        )
    )

    # What a subscribe request builds: the confirmation email (inlined HTML cached per
    # newsletter, values substituted, both parts quoted-printable, as bytes).
    reader_row = Subscriber(id=1, email="reader@example.org", name="Zoë O'Brien")
    confirm = "https://news.example.com/confirm/abc.def"

    def confirmation() -> bytes:
        text, html = render_confirmation(settings, newsletter, reader_row, confirm)
        return build_message(
            from_name=newsletter.from_name,
            from_email=newsletter.from_email,
            to_email=reader_row.email,
            to_name=reader_row.name,
            subject=confirmation_subject(newsletter),
            text=text,
            html=html,
            message_id="<confirm.1.abc@news.example.com>",
        )

    confirmation()  # premailer runs once per newsletter; the rest is per request
    rows.append(
        (
            "build a confirmation email (subscribe: render_confirmation + build_message)",
            median_us(confirmation, number=500, rounds=rounds),
        )
    )

    with tempfile.TemporaryDirectory() as directory:
        key = Path(directory) / "dkim.pem"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
        )
        dkim_settings = _settings(
            dkim_selector="bench", dkim_domain="news.example.com", dkim_private_key_file=key
        )
        signed = prepare_issue(issue, newsletter, dkim_settings, signer, installation=INSTALLATION)
        rows.append(
            (
                "personalise one copy + DKIM (rsa-sha256, 2048-bit key)",
                median_us(lambda: signed.personalise(reader), number=50, rounds=rounds),
            )
        )

    width = max(len(label) for label, _ in rows)
    print(f"issue: 10 stories, message {size:,} bytes; medians of {rounds} rounds")
    for label, micros in rows:
        share = f"{micros / render * 100:6.2f}% of render" if micros != render else ""
        print(f"{label:<{width}}  {micros:10.1f} µs  {share}")
    print(f"personalise / render = {plain / render * 100:.2f}% (contract: < 5%)")


if __name__ == "__main__":
    main()
