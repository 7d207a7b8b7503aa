from __future__ import annotations

import re

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit import links
from app.kit.tokens import Signer
from app.models import Delivery, Event, Issue, Newsletter
from app.rendering.prepared import Recipient, freeze_issue, prepare_issue, tracked_links
from app.settings import Settings
from tests.factories import create_issue, create_newsletter, create_subscription, stories_of


async def sending_issue(
    session: AsyncSession, settings: Settings, newsletter: Newsletter, subject: str = "S"
) -> tuple[Issue, Delivery]:
    issue = await create_issue(session, newsletter, stories=3, subject=subject)
    stories = await stories_of(session, issue)
    freeze_issue(issue, newsletter, stories, settings)
    issue.status = "sending"
    subscription = await create_subscription(
        session, newsletter, f"reader-{issue.id}@example.org", "Reader"
    )
    delivery = Delivery(issue_id=issue.id, subscription_id=subscription.id, status="sent")
    session.add(delivery)
    await session.commit()
    return issue, delivery


async def events(session: AsyncSession) -> list[Event]:
    result = await session.execute(
        select(Event).order_by(Event.id).execution_options(populate_existing=True)
    )
    return list(result.scalars())


def signer(settings: Settings) -> Signer:
    return Signer(settings.secret)


async def test_open_pixel_records_an_open_and_answers_an_uncached_gif(
    client: AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    newsletter = await create_newsletter(session, track_opens=True)
    issue, delivery = await sending_issue(session, settings, newsletter)
    token = links.open_token(signer(settings), delivery.id)
    response = await client.get(f"/t/o/{token}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    assert "no-store" in response.headers["cache-control"]
    [event] = await events(session)
    assert (event.kind, event.issue_id, event.delivery_id, event.subscription_id) == (
        "open",
        issue.id,
        delivery.id,
        delivery.subscription_id,
    )


async def test_a_bad_open_token_still_gets_the_gif_but_records_nothing(
    client: AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    newsletter = await create_newsletter(session, track_opens=True)
    _, delivery = await sending_issue(session, settings, newsletter)
    forged = links.open_token(Signer(b"another-secret-key-0123456789ab"), delivery.id)
    wrong_purpose = links.unsubscribe_token(signer(settings), delivery.id)
    unknown = links.open_token(signer(settings), 987654)
    for token in (forged, wrong_purpose, unknown, "garbage", "x" * 2000, "a.b"):
        response = await client.get(f"/t/o/{token}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
    assert await events(session) == []


async def test_opens_are_not_recorded_when_the_newsletter_does_not_track_them(
    client: AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    newsletter = await create_newsletter(session, track_opens=False)
    _, delivery = await sending_issue(session, settings, newsletter)
    response = await client.get(f"/t/o/{links.open_token(signer(settings), delivery.id)}")
    assert response.status_code == 200
    assert await events(session) == []


async def test_a_click_redirects_to_that_link_of_the_issue_and_records_it(
    client: AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    newsletter = await create_newsletter(session, track_clicks=True)
    issue, delivery = await sending_issue(session, settings, newsletter)
    assert issue.rendered_html is not None
    issue_links = tracked_links(issue.rendered_html)
    index = issue_links.index("https://example.com/guide?a=1&b=2")
    token = links.click_token(signer(settings), delivery.id, index)
    response = await client.get(f"/t/c/{token}")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/guide?a=1&b=2"
    [event] = await events(session)
    assert (event.kind, event.url, event.delivery_id, event.issue_id) == (
        "click",
        "https://example.com/guide?a=1&b=2",
        delivery.id,
        issue.id,
    )


async def test_every_click_link_in_a_personalised_copy_leads_to_its_original(
    client: AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    newsletter = await create_newsletter(session, track_clicks=True, track_opens=True)
    issue, delivery = await sending_issue(session, settings, newsletter)
    prepared = prepare_issue(
        issue, newsletter, settings, signer(settings), installation="abcdefghij"
    )
    data = prepared.personalise(
        Recipient(delivery.id, delivery.subscription_id, "reader@example.org", "R")
    )
    import email
    import email.policy

    message = email.message_from_bytes(data, policy=email.policy.default)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    targets = set()
    hrefs = re.findall(r'href="(http://testserver/t/c/[^"]+)"', html)
    for href in hrefs:
        response = await client.get(href.removeprefix("http://testserver"))
        assert response.status_code == 302
        targets.add(response.headers["location"])
    assert issue.rendered_html is not None
    assert targets == set(tracked_links(issue.rendered_html))
    assert "https://example.org/stories/2" in targets
    pixel = re.search(r'src="http://testserver(/t/o/[^"]+)"', html)
    assert pixel is not None
    assert (await client.get(pixel.group(1))).status_code == 200
    kinds = [e.kind for e in await events(session)]
    assert kinds.count("click") == len(hrefs)
    assert kinds.count("open") == 1


async def test_forged_cross_issue_and_out_of_range_click_tokens_are_404(
    client: AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    newsletter = await create_newsletter(session, track_clicks=True)
    issue, delivery = await sending_issue(session, settings, newsletter)
    other_newsletter = await create_newsletter(session, slug="other", track_clicks=True)
    other_issue = await create_issue(
        session, other_newsletter, stories=0, intro="[evil](https://evil.example/phish)"
    )
    freeze_issue(other_issue, other_newsletter, [], settings)
    await session.commit()
    assert issue.rendered_html is not None
    count = len(tracked_links(issue.rendered_html))
    good = signer(settings)
    tokens = [
        # Forged: signed with another key.
        links.click_token(Signer(b"another-secret-key-0123456789ab"), delivery.id, 0),
        # An open token, an unsubscribe token: the wrong purpose.
        links.open_token(good, delivery.id),
        links.unsubscribe_token(good, delivery.id),
        # Out of range for this issue's links.
        links.click_token(good, delivery.id, count),
        links.click_token(good, delivery.id, 10_000),
        # No such delivery.
        links.click_token(good, delivery.id + 1000, 0),
        # Hand-made payloads.
        good.sign(links.CLICK, delivery.id, -1),
        good.sign(links.CLICK, delivery.id),
        good.sign(links.CLICK, "https://evil.example", 0),
        "garbage",
        "",
    ]
    for token in tokens:
        response = await client.get(f"/t/c/{token}")
        assert response.status_code in (404, 405), (token, response.status_code)
        assert "evil" not in response.headers.get("location", "")
    assert await events(session) == []


async def test_a_click_on_an_issue_that_was_never_frozen_is_404(
    client: AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    newsletter = await create_newsletter(session, track_clicks=True)
    issue = await create_issue(session, newsletter, stories=1)
    subscription = await create_subscription(session, newsletter, "r@example.org")
    delivery = Delivery(issue_id=issue.id, subscription_id=subscription.id, status="queued")
    session.add(delivery)
    await session.commit()
    token = links.click_token(signer(settings), delivery.id, 0)
    assert (await client.get(f"/t/c/{token}")).status_code == 404


async def test_clicks_still_redirect_when_tracking_was_turned_off_but_record_nothing(
    client: AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    newsletter = await create_newsletter(session, track_clicks=True)
    issue, delivery = await sending_issue(session, settings, newsletter)
    newsletter.track_clicks = False
    await session.commit()
    response = await client.get(f"/t/c/{links.click_token(signer(settings), delivery.id, 0)}")
    assert response.status_code == 302
    assert issue.rendered_html is not None
    assert response.headers["location"] == tracked_links(issue.rendered_html)[0]
    assert await events(session) == []
