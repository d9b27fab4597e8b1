"""`impact-connect feed push|status|replay|schedule|show|rebuild-facts`: the impact-portal feed, from a terminal."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask.cli import with_appcontext

from bootstrap import Services
from db import utcnow
from feeds import delivery, document, jobs, schedule, sums
from feeds.delivery import Outcome
from feeds.facts import rebuild_facts
from feeds.layout import AggregateError
from feeds.models import FeedDelivery


def _services() -> Services:
    from cli import services

    return services()


@click.group("feed", help="The impact-portal feed.")
def feed_group() -> None:
    pass


@feed_group.command("push", help="Build the feed now and deliver it; also retry deliveries that are due.")
@with_appcontext
def push_command() -> None:
    services = _services()
    if not services.settings.portal_url:
        raise click.ClickException("PORTAL_URL is not set: there is nowhere to push the feed")
    if not services.settings.portal_secret:
        raise click.ClickException("PORTAL_SECRET is not set: the portal could not tell the feed is ours")
    now = utcnow()
    retried = jobs.retry_due(services, now=now)
    with _aggregate_errors_in_one_line():
        _, outcome = jobs.push_with(services, now=now)
    for earlier in retried:
        click.echo(_describe(earlier))
    click.echo(_describe(outcome))
    if outcome.status != delivery.DELIVERED:
        raise SystemExit(1)


@feed_group.command("status", help="Recent deliveries, newest first.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@with_appcontext
def status_command(limit: int) -> None:
    services = _services()
    with services.transaction() as session:
        rows = delivery.recent(session, limit)
        lines = [_status_line(row) for row in rows]
    click.echo("\n".join(lines) if lines else "no deliveries yet")


@feed_group.command("replay", help="Deliver a dead or delivered delivery again, with the same idempotency key.")
@click.argument("delivery_id", type=int)
@with_appcontext
def replay_command(delivery_id: int) -> None:
    services = _services()
    with services.transaction() as session:
        try:
            found = delivery.replay(session, delivery_id)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    if found is None:
        raise click.ClickException(f"no delivery {delivery_id}")
    outcome = jobs.deliver_with(services, delivery_id, now=utcnow())
    click.echo(_describe(outcome))
    if outcome.status != delivery.DELIVERED:
        raise SystemExit(1)


@feed_group.command("schedule", help="Make sure the daily 02:00 UTC feed run is scheduled (run at worker start-up).")
@with_appcontext
def schedule_command() -> None:
    when = schedule.ensure_daily(_services())
    if when is None:
        click.echo("no REDIS_URL: jobs run inline and nothing is scheduled; run `feed push` from cron instead")
    else:
        click.echo(f"daily feed scheduled for {when:%Y-%m-%d %H:%M} UTC")


@feed_group.command("show", help="Print the feed document that would be pushed now (nothing is sent).")
@with_appcontext
def show_command() -> None:
    services = _services()
    with _aggregate_errors_in_one_line(), services.transaction() as session:
        feed = document.build(session, settings=services.settings, now=utcnow())
    click.echo(json.dumps(feed, indent=2, ensure_ascii=False))


@feed_group.command(
    "rebuild-facts",
    help="Recompute every client's feed facts from their surveys, office, officer and accounts (after writing any of "
    "them other than through the service or the CSV import), then every profile's sums. Survey writes wait until it "
    "is done.",
)
@with_appcontext
def rebuild_facts_command() -> None:
    started = time.perf_counter()
    with _aggregate_errors_in_one_line(), _services().transaction() as session:
        written = rebuild_facts(session)
        sums.current(session)
    click.echo(f"rebuilt {written:,} feed facts and their profile sums in {time.perf_counter() - started:.1f} s")


@contextmanager
def _aggregate_errors_in_one_line() -> Iterator[None]:
    try:
        yield
    except AggregateError as exc:
        raise click.ClickException(str(exc)) from None


def _describe(outcome: Outcome) -> str:
    text = f"delivery {outcome.delivery_id}: {outcome.status}"
    if outcome.error:
        text += f" ({outcome.error})"
    if outcome.retry_in is not None:
        text += f"; next attempt in {outcome.retry_in}"
    return text


def _status_line(row: FeedDelivery) -> str:
    delivered = row.status == delivery.DELIVERED  # a replayed delivery keeps the time of its earlier delivery
    when = row.delivered_at if delivered else row.next_attempt_at
    label = "delivered" if delivered else "next attempt"
    parts = [f"{row.id:>5}", f"{row.status:<9}", f"attempts={row.attempts}", f"created={row.created_at:%Y-%m-%d %H:%M}"]
    if when is not None:
        parts.append(f"{label}={when:%Y-%m-%d %H:%M}")
    if row.last_error and row.status != delivery.DELIVERED:
        parts.append(f"error={row.last_error}")
    parts.append(f"key={row.idempotency_key}")
    return "  ".join(parts)
