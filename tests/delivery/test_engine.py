"""The delivery engine in-process against a real (fault-injecting) SMTP server."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from httpx import AsyncClient
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.kit.db import unit_of_work
from app.models import (
    Delivery,
    Event,
    Issue,
    Subscriber,
    Subscription,
    Suppression,
)
from app.settings import Settings
from tests.delivery.conftest import running_worker, wait_until
from tests.delivery.faulty_smtp import DROP, FaultyServer
from tests.factories import create_issue, create_newsletter, create_readers, seed

Maker = async_sessionmaker[AsyncSession]


async def issue_status(sessionmaker: Maker, issue_id: int) -> str:
    async with sessionmaker() as session:
        return str(
            (await session.execute(select(Issue.status).where(Issue.id == issue_id))).scalar_one()
        )


async def delivery_counts(sessionmaker: Maker, issue_id: int) -> dict[str, int]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.issue_id == issue_id)
            .group_by(Delivery.status)
        )
        return {str(row[0]): int(row[1]) for row in rows.all()}


async def wait_for_status(
    sessionmaker: Maker, issue_id: int, *statuses: str, timeout: float = 30
) -> None:
    async def done() -> bool:
        return await issue_status(sessionmaker, issue_id) in statuses

    await wait_until(done, timeout=timeout)


async def send(client: AsyncClient, headers: dict[str, str], issue_id: int) -> dict[str, object]:
    response = await client.post(f"/api/v1/issues/{issue_id}/send", headers=headers)
    assert response.status_code == 202, response.text
    body: dict[str, object] = response.json()
    return body


async def test_every_reader_gets_the_issue_exactly_once_with_a_stable_message_id(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, emails = await seed(sessionmaker, 250)
    assert await send(client, editor_headers, issue_id) == {"status": "sending", "recipients": 250}
    async with running_worker(faulty_settings(smtp_pool_size=4, batch_size=60), engine):
        await wait_for_status(sessionmaker, issue_id, "sent")
    copies = Counter(rcpt for m in faulty.sink.messages for rcpt in m.rcpt_tos)
    assert copies == Counter(dict.fromkeys(emails, 1))
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(Delivery.id, Delivery.status, Delivery.message_id, Delivery.attempts).where(
                    Delivery.issue_id == issue_id
                )
            )
        ).all()
    assert {row.status for row in rows} == {"sent"}
    assert {row.attempts for row in rows} == {1}
    ids_on_wire = {str(m.message["Message-ID"]) for m in faulty.sink.messages}
    assert ids_on_wire == {row.message_id for row in rows}
    assert all(f"d{row.id}." in str(row.message_id) for row in rows)
    assert await delivery_counts(sessionmaker, issue_id) == {"sent": 250}


async def test_send_leaves_out_suppressed_and_inactive_readers(
    sessionmaker: Maker, client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    async with unit_of_work(sessionmaker) as session:
        newsletter = await create_newsletter(session)
        active = await create_readers(session, newsletter, 5)
        await create_readers(session, newsletter, 3, status="pending", prefix="pending")
        await create_readers(session, newsletter, 2, status="unsubscribed", prefix="gone")
        session.add(Suppression(email=active[0], reason="hard_bounce"))
        issue = await create_issue(session, newsletter)
    assert (await send(client, editor_headers, issue.id))["recipients"] == 4
    async with sessionmaker() as session:
        emails = (
            await session.execute(
                select(Subscriber.email)
                .join(Subscription, Subscription.subscriber_id == Subscriber.id)
                .join(Delivery, Delivery.subscription_id == Subscription.id)
                .where(Delivery.issue_id == issue.id)
            )
        ).scalars()
        assert sorted(emails) == sorted(active[1:])


async def test_a_repeated_send_never_enqueues_twice(
    sessionmaker: Maker, client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    _, issue_id, _ = await seed(sessionmaker, 3)
    await send(client, editor_headers, issue_id)
    again = await client.post(f"/api/v1/issues/{issue_id}/send", headers=editor_headers)
    assert again.status_code == 409
    assert "sending" in again.json()["detail"]
    assert await delivery_counts(sessionmaker, issue_id) == {"queued": 3}


async def test_idempotency_key_replays_the_first_answer(
    sessionmaker: Maker, client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    _, issue_id, _ = await seed(sessionmaker, 3)
    headers = {**editor_headers, "Idempotency-Key": "abc-123"}
    first = await client.post(f"/api/v1/issues/{issue_id}/send", headers=headers)
    second = await client.post(f"/api/v1/issues/{issue_id}/send", headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json() == {"status": "sending", "recipients": 3}
    other = await client.post(
        f"/api/v1/issues/{issue_id}/send", headers={**editor_headers, "Idempotency-Key": "x"}
    )
    assert other.status_code == 409
    assert await delivery_counts(sessionmaker, issue_id) == {"queued": 3}


async def test_send_needs_an_editor_key_and_an_existing_issue(
    client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    assert (await client.post("/api/v1/issues/1/send")).status_code == 401
    assert (await client.post("/api/v1/issues/999/send", headers=editor_headers)).status_code == 404


async def test_an_issue_with_no_readers_is_sent_at_once(
    sessionmaker: Maker, client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    _, issue_id, _ = await seed(sessionmaker, 0)
    assert (await send(client, editor_headers, issue_id))["recipients"] == 0
    assert await issue_status(sessionmaker, issue_id) == "sent"


async def test_transient_failures_retry_then_end_failed(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, emails = await seed(sessionmaker, 4)
    flaky, dead, dropped = emails[0], emails[1], emails[2]
    faulty.sink.add("rcpt", "451 4.3.0 busy, try later", to=[flaky], attempts=[1, 2])
    faulty.sink.add("rcpt", "452 4.2.2 mailbox full", to=[dead])
    faulty.sink.add("data", DROP, to=[dropped], attempts=[1])
    await send(client, editor_headers, issue_id)
    async with running_worker(faulty_settings(max_attempts=3), engine):
        await wait_for_status(sessionmaker, issue_id, "sent")
    async with sessionmaker() as session:
        rows = {
            row.email: row
            for row in (
                await session.execute(
                    select(
                        Subscriber.email, Delivery.status, Delivery.attempts, Delivery.last_reply
                    )
                    .join(Subscription, Subscription.subscriber_id == Subscriber.id)
                    .join(Delivery, Delivery.subscription_id == Subscription.id)
                )
            ).all()
        }
        soft = (
            await session.execute(
                select(Subscription.soft_bounces)
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                .where(Subscriber.email == dead)
            )
        ).scalar_one()
    assert (rows[flaky].status, rows[flaky].attempts) == ("sent", 3)
    assert (rows[dead].status, rows[dead].attempts) == ("failed", 3)
    assert rows[dead].last_reply.startswith("452 4.2.2")
    assert (rows[dropped].status, rows[dropped].attempts) == ("sent", 2)
    assert soft == 1
    assert len(faulty.sink.to(flaky)) == 1
    assert faulty.sink.to(dead) == []


async def test_a_421_from_the_server_only_delays_and_uses_no_attempt(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, emails = await seed(sessionmaker, 2)
    # Three 421s in a row, more than MAX_ATTEMPTS allows for transient failures.
    faulty.sink.add("rcpt", "421 4.7.0 try again later", to=[emails[0]], attempts=[1, 2, 3])
    await send(client, editor_headers, issue_id)
    async with running_worker(faulty_settings(max_attempts=2), engine):
        await wait_for_status(sessionmaker, issue_id, "sent")
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(Delivery.status, Delivery.attempts)
                .join(Subscription, Subscription.id == Delivery.subscription_id)
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                .where(Subscriber.email == emails[0])
            )
        ).all()
    assert [tuple(r) for r in rows] == [("sent", 1)]
    assert len(faulty.sink.to(emails[0])) == 1


async def test_a_hard_bounce_suppresses_the_address(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, emails = await seed(sessionmaker, 3)
    faulty.sink.add("rcpt", "550 5.1.1 no such user here", to=[emails[0]])
    await send(client, editor_headers, issue_id)
    async with running_worker(faulty_settings(), engine):
        await wait_for_status(sessionmaker, issue_id, "sent")
    async with sessionmaker() as session:
        suppressed = (await session.execute(select(Suppression.email, Suppression.reason))).all()
        events = (await session.execute(select(Event.kind, Event.issue_id))).all()
        sub_status = (
            await session.execute(
                select(Subscription.status)
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                .where(Subscriber.email == emails[0])
            )
        ).scalar_one()
    assert [tuple(row) for row in suppressed] == [(emails[0], "hard_bounce")]
    assert [tuple(row) for row in events] == [("bounce", issue_id)]
    assert sub_status == "bounced"
    assert await delivery_counts(sessionmaker, issue_id) == {"sent": 2, "bounced": 1}


async def test_three_soft_bounces_in_a_row_suppress_the_address(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    async with unit_of_work(sessionmaker) as session:
        newsletter = await create_newsletter(session)
        emails = await create_readers(session, newsletter, 2)
        issues = [await create_issue(session, newsletter, number=n) for n in (1, 2, 3)]
    faulty.sink.add("rcpt", "452 4.2.2 mailbox full", to=[emails[0]])
    async with running_worker(faulty_settings(max_attempts=1), engine):
        for issue in issues:
            await send(client, editor_headers, issue.id)
            await wait_for_status(sessionmaker, issue.id, "sent")
    async with sessionmaker() as session:
        suppressed = (await session.execute(select(Suppression.email, Suppression.reason))).all()
    assert [tuple(row) for row in suppressed] == [(emails[0], "soft_bounces")]
    assert len(faulty.sink.to(emails[1])) == 3


async def test_a_run_of_policy_refusals_pauses_the_send_without_blaming_readers(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, _ = await seed(sessionmaker, 30)
    faulty.sink.add("mail", "550 5.7.1 sender not authorised (SPF)")
    await send(client, editor_headers, issue_id)
    async with running_worker(faulty_settings(smtp_pool_size=2), engine):
        await wait_for_status(sessionmaker, issue_id, "paused")
        async with sessionmaker() as session:

            async def settled() -> bool:
                counts = await delivery_counts(sessionmaker, issue_id)
                return counts.get("sending", 0) == 0

            await wait_until(settled)
    async with sessionmaker() as session:
        issue = (await session.execute(select(Issue).where(Issue.id == issue_id))).scalar_one()
        attempts = (await session.execute(select(func.max(Delivery.attempts)))).scalar_one()
        suppressed = (await session.execute(select(func.count()).select_from(Suppression))).scalar()
    assert issue.pause_reason is not None
    assert "5.7.1" in issue.pause_reason
    assert attempts == 0
    assert suppressed == 0
    assert await delivery_counts(sessionmaker, issue_id) == {"queued": 30}
    assert faulty.sink.messages == []


async def test_a_server_that_is_down_only_delays_the_send(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, emails = await seed(sessionmaker, 20)
    faulty.stop()
    await send(client, editor_headers, issue_id)
    async with running_worker(faulty_settings(max_attempts=1), engine):

        async def tried() -> bool:
            async with sessionmaker() as session:
                replies = (
                    (
                        await session.execute(
                            select(Delivery.last_reply).where(Delivery.last_reply.is_not(None))
                        )
                    )
                    .scalars()
                    .all()
                )
                return any("unreachable" in (r or "") for r in replies)

        await wait_until(tried)
        faulty.start()
        await wait_for_status(sessionmaker, issue_id, "sent", timeout=60)
    assert await delivery_counts(sessionmaker, issue_id) == {"sent": 20}
    assert Counter(r for m in faulty.sink.messages for r in m.rcpt_tos) == Counter(
        dict.fromkeys(emails, 1)
    )


async def test_a_second_smtp_url_takes_over_when_the_first_is_down(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, emails = await seed(sessionmaker, 10)
    down = FaultyServer()  # never started: connections are refused
    await send(client, editor_headers, issue_id)
    settings = faulty_settings(smtp_url=f"{down.url},{faulty.url}")
    async with running_worker(settings, engine):
        await wait_for_status(sessionmaker, issue_id, "sent")
    assert len(faulty.sink.messages) == 10


async def test_an_unsubscribed_reader_is_skipped_mid_send(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, emails = await seed(sessionmaker, 5)
    await send(client, editor_headers, issue_id)
    # The reader leaves after the send started, before the worker got to them; the
    # claim-time check skips them even though their row is still queued.
    async with unit_of_work(sessionmaker) as session:
        await session.execute(
            update(Subscription)
            .where(
                Subscription.subscriber_id.in_(
                    select(Subscriber.id).where(Subscriber.email == emails[2])
                )
            )
            .values(status="unsubscribed")
        )
    async with running_worker(faulty_settings(), engine):
        await wait_for_status(sessionmaker, issue_id, "sent")
    assert faulty.sink.to(emails[2]) == []
    assert await delivery_counts(sessionmaker, issue_id) == {"sent": 4, "skipped": 1}


async def test_a_delivery_whose_subscription_is_gone_is_skipped_not_stuck(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, emails = await seed(sessionmaker, 4)
    await send(client, editor_headers, issue_id)
    # A subscription deleted while its send was being enqueued leaves its delivery behind
    # (deliveries have no foreign key): the row must still end, and nobody be mailed.
    async with unit_of_work(sessionmaker) as session:
        gone = select(Subscriber.id).where(Subscriber.email == emails[1])
        await session.execute(delete(Subscription).where(Subscription.subscriber_id.in_(gone)))
    async with running_worker(faulty_settings(), engine):
        await wait_for_status(sessionmaker, issue_id, "sent")
    assert faulty.sink.to(emails[1]) == []
    assert await delivery_counts(sessionmaker, issue_id) == {"sent": 3, "skipped": 1}
    async with sessionmaker() as session:
        replies = (
            await session.execute(
                select(Delivery.last_reply).where(
                    Delivery.issue_id == issue_id, Delivery.status == "skipped"
                )
            )
        ).scalars()
        assert list(replies) == ["subscription deleted"]


async def test_pause_resume_and_cancel_control_a_send(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, _ = await seed(sessionmaker, 30)
    faulty.sink.accept_delay = 0.2  # slow enough to pause and cancel in the middle
    await send(client, editor_headers, issue_id)
    url = f"/api/v1/issues/{issue_id}"
    async with running_worker(faulty_settings(smtp_pool_size=2, batch_size=4), engine):
        await wait_until(lambda: _has_sent(sessionmaker, issue_id))
        paused = await client.post(f"{url}/pause", headers=editor_headers)
        assert paused.status_code == 200
        assert paused.json()["status"] == "paused"
        assert (await client.post(f"{url}/pause", headers=editor_headers)).status_code == 409

        async def quiet() -> bool:
            return (await delivery_counts(sessionmaker, issue_id)).get("sending", 0) == 0

        await wait_until(quiet)
        held = await delivery_counts(sessionmaker, issue_id)
        assert held.get("queued", 0) > 0
        resumed = await client.post(f"{url}/resume", headers=editor_headers)
        assert resumed.json()["status"] == "sending"
        await wait_until(lambda: _has_sent(sessionmaker, issue_id, more_than=held.get("sent", 0)))
        cancelled = await client.post(f"{url}/cancel", headers=editor_headers)
        assert cancelled.status_code == 200
        await wait_until(quiet)
    counts = await delivery_counts(sessionmaker, issue_id)
    assert counts.get("queued", 0) == 0
    assert counts.get("cancelled", 0) > 0
    assert counts["sent"] + counts["cancelled"] == 30
    assert len(faulty.sink.messages) == counts["sent"]
    assert (await client.post(f"{url}/resume", headers=editor_headers)).status_code == 409


async def _has_sent(sessionmaker: Maker, issue_id: int, more_than: int = 0) -> bool:
    return (await delivery_counts(sessionmaker, issue_id)).get("sent", 0) > more_than


async def test_resend_failed_gives_failed_deliveries_a_new_run(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, emails = await seed(sessionmaker, 3)
    faulty.sink.add("rcpt", "451 4.4.1 no answer from host", to=[emails[1]], attempts=[1])
    await send(client, editor_headers, issue_id)
    async with running_worker(faulty_settings(max_attempts=1), engine):
        await wait_for_status(sessionmaker, issue_id, "sent")
        assert await delivery_counts(sessionmaker, issue_id) == {"sent": 2, "failed": 1}
        response = await client.post(
            f"/api/v1/issues/{issue_id}/resend-failed", headers=editor_headers
        )
        assert response.status_code == 202
        assert response.json() == {"requeued": 1, "status": "sending"}
        await wait_for_status(sessionmaker, issue_id, "sent")
    assert await delivery_counts(sessionmaker, issue_id) == {"sent": 3}
    assert len(faulty.sink.to(emails[1])) == 1


async def test_stats_and_deliveries_show_progress_and_last_reply(
    engine: AsyncEngine,
    sessionmaker: Maker,
    client: AsyncClient,
    editor_headers: dict[str, str],
    faulty: FaultyServer,
    faulty_settings: Callable[..., Settings],
) -> None:
    _, issue_id, emails = await seed(sessionmaker, 5)
    faulty.sink.add("rcpt", "550 5.1.1 unknown user", to=[emails[4]])
    await send(client, editor_headers, issue_id)
    async with running_worker(faulty_settings(), engine):
        await wait_for_status(sessionmaker, issue_id, "sent")
    stats = (await client.get(f"/api/v1/issues/{issue_id}/stats", headers=editor_headers)).json()
    assert stats["status"] == "sent"
    assert (stats["recipients"], stats["sent"], stats["bounced"], stats["queued"]) == (5, 4, 1, 0)
    assert stats["started_at"] is not None
    assert stats["finished_at"] is not None
    page = (
        await client.get(f"/api/v1/issues/{issue_id}/deliveries?limit=2", headers=editor_headers)
    ).json()
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    rest = (
        await client.get(
            f"/api/v1/issues/{issue_id}/deliveries?limit=10&cursor={page['next_cursor']}",
            headers=editor_headers,
        )
    ).json()
    assert len(rest["items"]) == 3
    assert rest["next_cursor"] is None
    bounced = (
        await client.get(
            f"/api/v1/issues/{issue_id}/deliveries?status=bounced", headers=editor_headers
        )
    ).json()["items"]
    assert [(d["email"], d["last_reply"][:9]) for d in bounced] == [(emails[4], "550 5.1.1")]
    sent = page["items"][0]
    assert sent["message_id"].startswith("<d")
    assert sent["sent_at"] is not None
    bad = await client.get(
        f"/api/v1/issues/{issue_id}/deliveries?status=nope", headers=editor_headers
    )
    assert bad.status_code == 422


async def test_an_issue_id_beyond_64_bits_is_refused_not_a_server_error(
    client: AsyncClient, editor_headers: dict[str, str]
) -> None:
    for path in ("send", "stats", "deliveries"):
        method = client.post if path == "send" else client.get
        response = await method(f"/api/v1/issues/{2**70}/{path}", headers=editor_headers)
        assert response.status_code == 422
