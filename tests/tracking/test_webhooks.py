"""POST /api/v1/webhooks/bounces in each format it accepts."""

from __future__ import annotations

import base64
import json
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.db import unit_of_work
from app.kit.ids import message_id_tag
from app.models import Delivery, Event, Installation, Subscriber, Subscription, Suppression
from app.settings import Settings
from tests.factories import seed

Maker = async_sessionmaker[AsyncSession]
URL = "/api/v1/webhooks/bounces"


def auth(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.webhook_secret}"}


async def suppressions(sessionmaker: Maker) -> list[tuple[str, str]]:
    async with sessionmaker() as session:
        rows = await session.execute(select(Suppression.email, Suppression.reason))
        return sorted((str(r[0]), str(r[1])) for r in rows.all())


async def events(sessionmaker: Maker) -> list[tuple[str, int | None, int | None]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Event.kind, Event.issue_id, Event.delivery_id).order_by(Event.id)
        )
        return [(str(r[0]), r[1], r[2]) for r in rows.all()]


async def subscription_status(sessionmaker: Maker, address: str) -> str:
    async with sessionmaker() as session:
        return str(
            (
                await session.execute(
                    select(Subscription.status)
                    .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                    .where(Subscriber.email == address)
                )
            ).scalar_one()
        )


async def sent_delivery(sessionmaker: Maker, client: AsyncClient, headers: dict[str, str]) -> Any:
    """Send an issue to two readers and give the first delivery its Message-ID."""
    _, issue_id, emails = await seed(sessionmaker, 2)
    assert (
        await client.post(f"/api/v1/issues/{issue_id}/send", headers=headers)
    ).status_code == 202
    async with unit_of_work(sessionmaker) as session:
        delivery_id = (
            (
                await session.execute(
                    select(Delivery.id).where(Delivery.issue_id == issue_id).order_by(Delivery.id)
                )
            )
            .scalars()
            .first()
        )
        installation = (await session.execute(select(Installation.value))).scalar_one()
        tag = message_id_tag(installation)
        message_id = f"<d{delivery_id}.i{issue_id}.{tag}@testserver>"
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(status="sent", message_id=message_id)
        )
    return issue_id, delivery_id, message_id, emails[0]


async def test_the_webhook_refuses_a_missing_or_wrong_secret(
    client: AsyncClient, settings: Settings
) -> None:
    body = {"email": "a@example.com", "kind": "hard"}
    assert (await client.post(URL, json=body)).status_code == 401
    wrong = {"Authorization": "Bearer not-the-secret"}
    assert (await client.post(URL, json=body, headers=wrong)).status_code == 401
    basic = base64.b64encode(b"sns:wrong").decode()
    assert (
        await client.post(URL, json=body, headers={"Authorization": f"Basic {basic}"})
    ).status_code == 401


async def test_a_generic_hard_bounce_suppresses_and_is_recorded(
    client: AsyncClient, settings: Settings, sessionmaker: Maker
) -> None:
    response = await client.post(
        URL,
        json={"email": "Gone@Example.com", "kind": "hard", "diagnostic": "550 5.1.1 unknown"},
        headers=auth(settings),
    )
    assert response.status_code == 200
    assert response.json() == {"recorded": 1, "suppressed": 1}
    assert await suppressions(sessionmaker) == [("Gone@example.com", "hard_bounce")]
    assert await events(sessionmaker) == [("bounce", None, None)]


async def test_a_soft_bounce_is_recorded_without_suppressing(
    client: AsyncClient, settings: Settings, sessionmaker: Maker
) -> None:
    response = await client.post(
        URL, json={"email": "full@example.com", "kind": "soft"}, headers=auth(settings)
    )
    assert response.json() == {"recorded": 1, "suppressed": 0}
    assert await suppressions(sessionmaker) == []
    assert await events(sessionmaker) == [("soft_bounce", None, None)]


async def test_a_bad_generic_body_is_a_clear_422(client: AsyncClient, settings: Settings) -> None:
    response = await client.post(
        URL, json={"email": "x@example.com", "kind": "sideways"}, headers=auth(settings)
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "kind"]
    garbage = await client.post(
        URL, content=b"not json", headers={**auth(settings), "Content-Type": "text/plain"}
    )
    assert garbage.status_code == 400


async def test_a_complaint_with_a_message_id_maps_to_its_delivery(
    client: AsyncClient,
    settings: Settings,
    sessionmaker: Maker,
    editor_headers: dict[str, str],
) -> None:
    issue_id, delivery_id, message_id, address = await sent_delivery(
        sessionmaker, client, editor_headers
    )
    response = await client.post(
        URL,
        json={"email": address, "kind": "complaint", "message_id": message_id},
        headers=auth(settings),
    )
    assert response.json() == {"recorded": 1, "suppressed": 1}
    assert await events(sessionmaker) == [("complaint", issue_id, delivery_id)]
    assert await suppressions(sessionmaker) == [(address, "complaint")]
    assert await subscription_status(sessionmaker, address) == "complained"


async def test_another_installations_message_id_never_lands_on_our_delivery(
    client: AsyncClient,
    settings: Settings,
    sessionmaker: Maker,
    editor_headers: dict[str, str],
) -> None:
    """Same delivery and issue numbers, another installation's tag: a report of a message
    someone else sent names none of ours, so it is recorded for its address alone."""
    issue_id, delivery_id, message_id, address = await sent_delivery(
        sessionmaker, client, editor_headers
    )
    foreign = message_id.replace(message_id.split(".")[2].split("@")[0], "a" * 10)
    assert foreign != message_id
    response = await client.post(
        URL,
        json={"email": "someone.else@example.net", "kind": "hard", "message_id": foreign},
        headers=auth(settings),
    )
    assert response.json() == {"recorded": 1, "suppressed": 1}
    assert await events(sessionmaker) == [("bounce", None, None)]
    assert await suppressions(sessionmaker) == [("someone.else@example.net", "hard_bounce")]
    assert await subscription_status(sessionmaker, address) == "active"


async def test_sns_subscription_confirmation_is_acknowledged_without_fetching(
    client: AsyncClient, settings: Settings
) -> None:
    body = {
        "Type": "SubscriptionConfirmation",
        "TopicArn": "arn:aws:sns:eu-west-1:123:bounces",
        "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&T=1",
        "Token": "abc",
    }
    basic = base64.b64encode(f"sns:{settings.webhook_secret}".encode()).decode()
    response = await client.post(
        URL,
        content=json.dumps(body),
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": "SubscriptionConfirmation",
        },
    )
    assert response.status_code == 200
    assert response.json()["subscribe_url"] == body["SubscribeURL"]


async def test_ses_permanent_bounce_and_complaint_via_sns(
    client: AsyncClient,
    settings: Settings,
    sessionmaker: Maker,
    editor_headers: dict[str, str],
) -> None:
    issue_id, delivery_id, message_id, address = await sent_delivery(
        sessionmaker, client, editor_headers
    )
    ses_bounce = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {"emailAddress": address, "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1"}
            ],
        },
        "mail": {"messageId": "ses-internal-id", "commonHeaders": {"messageId": message_id}},
    }
    notification = {"Type": "Notification", "Message": json.dumps(ses_bounce)}
    headers = {
        **auth(settings),
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": "Notification",
    }
    response = await client.post(URL, content=json.dumps(notification), headers=headers)
    assert response.json() == {"recorded": 1, "suppressed": 1}
    assert await events(sessionmaker) == [("bounce", issue_id, delivery_id)]
    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "angry@example.com"}],
            "complaintFeedbackType": "abuse",
        },
        "mail": {"messageId": "ses-2"},
    }
    notification = {"Type": "Notification", "Message": json.dumps(complaint)}
    response = await client.post(URL, content=json.dumps(notification), headers=headers)
    assert response.json() == {"recorded": 1, "suppressed": 1}
    assert await suppressions(sessionmaker) == sorted(
        [(address, "hard_bounce"), ("angry@example.com", "complaint")]
    )


DSN = (
    "From: MAILER-DAEMON@mx.example.com\r\n"
    "To: news@example.org\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
    "\r\n"
    "--B\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "Your message could not be delivered.\r\n"
    "--B\r\n"
    "Content-Type: message/delivery-status\r\n"
    "\r\n"
    "Reporting-MTA: dns; mx.example.com\r\n"
    "\r\n"
    "Final-Recipient: rfc822; {address}\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
    "--B\r\n"
    "Content-Type: text/rfc822-headers\r\n"
    "\r\n"
    "From: news@example.org\r\n"
    "To: {address}\r\n"
    "Message-ID: {message_id}\r\n"
    "--B--\r\n"
)

ARF = (
    "From: fbl@isp.example\r\n"
    "To: abuse@example.org\r\n"
    "Subject: FW: complaint\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n'
    "\r\n"
    "--F\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "This is an email abuse report.\r\n"
    "--F\r\n"
    "Content-Type: message/feedback-report\r\n"
    "\r\n"
    "Feedback-Type: abuse\r\n"
    "User-Agent: SomeGenerator/1.0\r\n"
    "Version: 1\r\n"
    "\r\n"
    "--F\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: news@example.org\r\n"
    "To: {address}\r\n"
    "Message-ID: {message_id}\r\n"
    "Subject: Issue 1\r\n"
    "\r\n"
    "Hello\r\n"
    "--F--\r\n"
)


async def test_an_rfc3464_delivery_status_report_is_a_hard_bounce_of_that_delivery(
    client: AsyncClient,
    settings: Settings,
    sessionmaker: Maker,
    editor_headers: dict[str, str],
) -> None:
    issue_id, delivery_id, message_id, address = await sent_delivery(
        sessionmaker, client, editor_headers
    )
    body = DSN.format(address=address, message_id=message_id).encode()
    response = await client.post(
        URL, content=body, headers={**auth(settings), "Content-Type": "message/rfc822"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": 1, "suppressed": 1}
    assert await events(sessionmaker) == [("bounce", issue_id, delivery_id)]
    assert await subscription_status(sessionmaker, address) == "bounced"


async def test_an_arf_feedback_report_is_a_complaint(
    client: AsyncClient,
    settings: Settings,
    sessionmaker: Maker,
    editor_headers: dict[str, str],
) -> None:
    issue_id, delivery_id, message_id, address = await sent_delivery(
        sessionmaker, client, editor_headers
    )
    body = ARF.format(address=address, message_id=message_id).encode()
    response = await client.post(
        URL, content=body, headers={**auth(settings), "Content-Type": "message/rfc822"}
    )
    assert response.json() == {"recorded": 1, "suppressed": 1}
    assert await events(sessionmaker) == [("complaint", issue_id, delivery_id)]
    assert await suppressions(sessionmaker) == [(address, "complaint")]


async def test_a_report_that_is_not_a_report_is_refused(
    client: AsyncClient, settings: Settings
) -> None:
    response = await client.post(
        URL,
        content=b"From: a@b\r\nSubject: hi\r\n\r\nhello\r\n",
        headers={**auth(settings), "Content-Type": "message/rfc822"},
    )
    assert response.status_code == 400
