"""Clients whose feed facts wait to be recomputed, so a survey submission does not pay for the refresh.

Recomputing a client's facts (`feeds.facts.refresh_facts`) takes several statements over their surveys and
accounts: about 12 ms at 1M clients, and it was the largest single cost of the USSD hop that submits a survey
(bench/README.md). A survey write now only marks the client in `feed_facts_stale`, in its own transaction; whoever
reads the aggregates (the feed build, the pull API, the /impact page, the debounced and daily feed jobs) first
calls `catch_up`, which refreshes the marked clients and removes their marks in the reader's transaction; a job
half a minute after a change does the same (`feeds.schedule.survey_changed`), so readers seldom find marks left. A
reader never sees facts older than the surveys committed before it started, and the write path stays one upsert.

Why this is safe under concurrency (PostgreSQL, READ COMMITTED): the mark is an upsert that updates an existing
mark, so it holds the mark's row lock until the writer commits, and `catch_up` takes marks with
`FOR UPDATE SKIP LOCKED`. Either the writer's mark is locked (catch_up skips it; the next reader takes it), or
catch_up holds it (the writer's upsert waits, finds the row deleted and inserts a new mark): no committed survey
is left without a mark or a refresh. SQLite has one writer at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache

from sqlalchemy import DateTime, TextClause, bindparam, text
from sqlalchemy.orm import Session

from feeds import marks
from feeds.facts import refresh_facts

BATCH = 500  # marks taken per round; each round is one refresh of that many clients

# SQL text: SQLAlchemy does not cache the compiled form of the dialects' ON CONFLICT inserts, and this runs on
# every survey write. `DO UPDATE` (not `DO NOTHING`) so that the writer holds the mark's row lock (module docstring).
_MARK = """
INSERT INTO feed_facts_stale (client_id, marked_at) VALUES (:client_id, :marked_at)
ON CONFLICT (client_id) DO UPDATE SET marked_at = excluded.marked_at
"""


def mark(session: Session, client_ids: Iterable[int], *, now: datetime) -> None:
    """Note that these clients' facts are out of date, in the caller's transaction."""
    rows = [{"client_id": client_id, "marked_at": now} for client_id in sorted(set(client_ids))]
    if rows:
        session.execute(_mark_statement(), rows)


def catch_up(session: Session) -> int:
    """Refresh the facts of every marked client and remove their marks, in the caller's transaction; returns how
    many clients were refreshed. Costs one short statement when nothing is marked."""
    session.flush()  # marks pending in this session's own writes are rows the statement below must see
    refreshed = 0
    while True:
        client_ids = marks.take(session, "feed_facts_stale", "client_id", BATCH)
        if not client_ids:
            return refreshed
        refresh_facts(session, client_ids)
        refreshed += len(client_ids)


@cache
def _mark_statement() -> TextClause:
    return text(_MARK).bindparams(bindparam("marked_at", type_=DateTime(timezone=True)))
