"""Each client profile's measures per period, summed from the facts once and kept, so a feed build reads one row
per profile and period (80,000 at 1M clients) instead of one per client and period (1.9 million).

Why: the feed's finest grain is the client profile (`feeds/aggregates.py`). Summing the facts into it took 0.6 s of
a 1.5 s build at 1M clients, twice a plain GROUP BY over every survey, and it grows with the clients; a profile's
sums change only when the facts of one of its clients do.

How they are kept current:

- `feeds.facts` marks, in the transaction that changes facts, every profile it touched (the clients' profiles
  before and after) in `feed_profile_dirty`; the mark is an upsert that holds the mark's row lock until commit,
  the rule `feeds/stale.py` explains;
- `current`, which every reader of the aggregates calls after `stale.catch_up` (and the catch-up job), recomputes
  the sums of the marked profiles from the facts, and of every profile whose sums were stored under another layout
  (a survey brought a band label or a set of poverty lines no one had before: `feeds/layout.py`), then returns the
  layout and its id;
- readers take only the rows of that layout id and check afterwards that no row of another layout was committed
  meanwhile (`only_in`); if one was, they read again.

Concurrency (PostgreSQL, READ COMMITTED): one transaction at a time recomputes (a transaction-level advisory lock),
and it reads the layout after taking the lock and again at the end of its pass, repeating the pass when the layout
changed meanwhile (a fact writer committed a new band): when it returns, no row it wrote is stored under a layout
that lacks a band of the facts it was summed from. Marks locked by a transaction still writing facts are skipped,
and left for the next reader, with those facts. SQLite has one writer at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import TextClause, bindparam, func, insert, literal, or_, select, text
from sqlalchemy.orm import Session

from feeds import marks
from feeds.layout import AggregatesUnavailable, Layout, measures, read_layout, signature
from feeds.models import (
    SUM_COUNTS,
    SUM_LINES,
    feed_facts,
    feed_keys,
    feed_profile_dirty,
    feed_profile_sums,
)

BATCH = 500  # profiles recomputed per statement
# After recomputing this many profiles, fresh statistics for the planner: with none (a new table, a back-fill) it
# took nested loops over the sums and the feed build at 1M clients took 183 s instead of 1 s (bench/bench_feed.py).
ANALYZE_AFTER = 1000
LOCK_KEY = 0x1C_F33D_5035  # pg_advisory_xact_lock: one transaction at a time recomputes sums

# SQL text (not cached by SQLAlchemy otherwise: bench/README.md); `DO UPDATE` so that the marking transaction holds
# the mark's row lock until it commits (feeds/stale.py).
_MARK = """
INSERT INTO feed_profile_dirty (profile_id)
SELECT DISTINCT profile_id FROM feed_facts WHERE client_id IN :client_ids
ON CONFLICT (profile_id) DO UPDATE SET profile_id = excluded.profile_id
"""
_MARK_ALL = "INSERT INTO feed_profile_dirty (profile_id) SELECT DISTINCT profile_id FROM feed_facts"
_NAMED = ("clients", "surveys", "score_sum", "score_n")  # the layout's first four measures


def mark_clients_profiles(session: Session, client_ids: Sequence[int]) -> None:
    """Mark the profiles of these clients' current facts as out of date (call before and after changing them)."""
    if client_ids:
        session.execute(_mark_statement(), {"client_ids": list(client_ids)})


def current(session: Session) -> tuple[Layout, int]:
    """The layout and its id, after recomputing the sums that needed it; the caller reads sums of that id."""
    layout = _fitting_layout(session)
    layout_id = _layout_id(session, layout)
    if not _needs_recomputing(session, layout_id):
        return layout, layout_id
    _lock(session)
    recomputed = 0
    while True:
        layout = _fitting_layout(session)
        layout_id = _layout_id(session, layout)
        while profiles := _take_marks(session) or _other_layouts(session, layout_id):
            _recompute(session, profiles, layout, layout_id)
            recomputed += len(profiles)
        if signature(read_layout(session)) == signature(layout):
            break
    if recomputed >= ANALYZE_AFTER and session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE feed_profile_sums"))
    return layout, layout_id


def only_in(session: Session, layout_id: int) -> bool:
    """Whether every stored sum is of this layout (read after the aggregates: see the module docstring)."""
    return not _other_layouts(session, layout_id, limit=1)


def mark_all(session: Session) -> None:
    """Drop every stored sum and mark every profile of the facts (after `feeds.facts.rebuild_facts`): the next
    `current` computes them all, and a layout that cannot be stored stops the reader, not the rebuild."""
    session.execute(feed_profile_sums.delete())
    session.execute(feed_profile_dirty.delete())
    session.execute(text(_MARK_ALL))


def _needs_recomputing(session: Session, layout_id: int) -> bool:
    marked = select(feed_profile_dirty.c.profile_id).exists()
    other = _other_layout_rows(layout_id).exists()
    return bool(session.scalar(select(or_(marked, other))))


def _other_layouts(session: Session, layout_id: int, limit: int = BATCH) -> list[int]:
    query = _other_layout_rows(layout_id).distinct().limit(limit)
    return list(session.scalars(query))


def _other_layout_rows(layout_id: int) -> Any:
    """Profiles with sums of another layout: two ranges of the layout index, not a scan."""
    column = feed_profile_sums.c.layout_id
    return select(feed_profile_sums.c.profile_id).where(or_(column < layout_id, column > layout_id))


def _take_marks(session: Session) -> list[int]:
    return marks.take(session, "feed_profile_dirty", "profile_id", BATCH)


def _recompute(session: Session, profiles: list[int], layout: Layout, layout_id: int) -> None:
    session.execute(feed_profile_sums.delete().where(feed_profile_sums.c.profile_id.in_(profiles)))
    session.execute(_insert(layout, layout_id, profiles))


def _insert(layout: Layout, layout_id: int, profiles: list[int]) -> Any:
    """INSERT ... SELECT of the profiles' sums from the facts, in `layout`."""
    generic = layout.counts - len(_NAMED)
    facts = feed_facts
    keys = (facts.c.period_kind, facts.c.profile_id, facts.c.ord)
    columns = [
        *_NAMED,
        *(f"count_{index}" for index in range(generic)),
        *(f"line_sum_{index}" for index in range(len(layout.slugs))),
    ]
    query = select(*keys, literal(layout_id), func.min(facts.c.client_id), *measures(facts, layout))
    query = query.where(facts.c.profile_id.in_(profiles)).group_by(*keys)
    names = ["period_kind", "profile_id", "ord", "layout_id", "member", *columns]
    return insert(feed_profile_sums).from_select(names, query)


def _fitting_layout(session: Session) -> Layout:
    """The current layout, if the sums' columns can hold it."""
    layout = read_layout(session)
    generic = layout.counts - len(_NAMED)
    if generic > SUM_COUNTS or len(layout.slugs) > SUM_LINES:
        raise AggregatesUnavailable(
            f"the feed's profile sums hold {SUM_COUNTS} band and line-set counts and {SUM_LINES} poverty lines; "
            f"this MFI's bands and lines need {generic} and {len(layout.slugs)}: surveys carry band labels of "
            "settings since replaced; `impact-connect ppi reband` gives every survey today's bands"
        )
    return layout


def _layout_id(session: Session, layout: Layout) -> int:
    """The `feed_keys` id of the layout's signature, added when new."""
    value = signature(layout)
    query = select(feed_keys.c.id).where(feed_keys.c.kind == "layout", feed_keys.c.value == value)
    found = session.scalar(query)
    if found is None:
        session.execute(_INTERN, {"value": value})
        found = session.scalar(query)
    return int(found)  # type: ignore[arg-type]


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})


@cache
def _mark_statement() -> TextClause:
    return text(_MARK).bindparams(bindparam("client_ids", expanding=True))


_INTERN = text("INSERT INTO feed_keys (kind, value) VALUES ('layout', :value) ON CONFLICT (kind, value) DO NOTHING")
