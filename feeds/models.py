"""Tables of the feed: the outbox of deliveries to the impact portal (retried with back-off, then dead-lettered),
and the fact table the aggregates are computed from (see `feeds/facts.py` for why it exists and how it is kept)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from db import Base, utcnow

PERIOD_KINDS: tuple[str, ...] = ("month", "quarter", "year")
# One likelihood column per poverty line: the longest scorecard has 20 lines (tests/unit check every scorecard).
FACT_LINES = 20
# On PostgreSQL `feed_facts` is partitioned by period kind, so a build scans only its own kind's rows.
FACT_PARTITIONS: dict[str, str] = {kind: f"feed_facts_{kind}" for kind in PERIOD_KINDS}


class FeedDelivery(Base):
    __tablename__ = "feed_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    feed_version: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending|delivered|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# Strings the facts refer to by number: a client's profile ("office|officer|holdings"), a survey's poverty-line
# set ("slug,slug,..." in slug order) and a band label. Rows are only ever added.
feed_keys = Table(
    "feed_keys",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(8), nullable=False),  # profile | lines | band
    Column("value", Text, nullable=False),
    UniqueConstraint("kind", "value"),
)

# One row per client, period kind and period in which the client has a survey: the latest survey in it (ties ->
# highest id) and what the aggregates need of it, already worked out.
feed_facts = Table(
    "feed_facts",
    Base.metadata,
    Column("client_id", Integer, nullable=False),
    Column("period_kind", String(8), nullable=False),  # month | quarter | year
    Column("ord", Integer, nullable=False),  # the period's ordinal: year*12+month-1, year*4+quarter-1 or year
    Column("survey_id", Integer, nullable=False),
    Column("profile_id", Integer, nullable=False),  # feed_keys: the client's leaf office, officer, funds, products
    Column("line_set_id", Integer),  # feed_keys: the survey's poverty lines, naming the line_N columns
    Column("surveys", Integer, nullable=False),  # the client's surveys in the period
    Column("headline_score", Integer),
    Column("band_id", Integer),  # feed_keys
    Column("first_band_id", Integer),  # the band of the client's first survey ever, when that is another survey
    Column("prev_band_id", Integer),  # the band of the client's latest survey in the period just before
    *(Column(f"line_{position}", Float) for position in range(1, FACT_LINES + 1)),
    PrimaryKeyConstraint("client_id", "period_kind", "ord"),
    Index("ix_feed_facts_profile_id", "profile_id"),  # the profile sums are recomputed per profile
    postgresql_partition_by="LIST (period_kind)",
)

# The measures of each client profile and period, summed from `feed_facts` in the layout of `feeds/layout.py`
# (whose signature `layout_id` names, a `feed_keys` row of kind "layout"): the feed's finest grain, kept so that a
# build reads one row per profile and period instead of one per client (`feeds/sums.py`). The layout's counts after
# the first four go in `count_N`, its likelihood sums in `line_sum_N`, in layout order; the rest stay NULL.
SUM_COUNTS = 240  # bands + 2 x bands^2 + line sets: 10 bands and 20 line sets fit
SUM_LINES = 60  # distinct poverty-line slugs over every line set
feed_profile_sums = Table(
    "feed_profile_sums",
    Base.metadata,
    Column("period_kind", String(8), nullable=False),
    Column("profile_id", Integer, nullable=False),
    Column("ord", Integer, nullable=False),
    Column("layout_id", Integer, nullable=False, index=True),
    Column("member", Integer, nullable=False),  # the profile's lowest client id in the period: one that stands for all
    Column("clients", Integer, nullable=False),
    Column("surveys", Integer, nullable=False),
    Column("score_sum", BigInteger),  # NULL when no survey of theirs has a headline score
    Column("score_n", Integer, nullable=False),
    *(Column(f"count_{index}", Integer) for index in range(SUM_COUNTS)),
    *(Column(f"line_sum_{index}", Float) for index in range(SUM_LINES)),
    PrimaryKeyConstraint("period_kind", "profile_id", "ord"),
    Index("ix_feed_profile_sums_profile_id", "profile_id"),
)

# Profiles whose sums are out of date: a fact refresh marks the profiles it touched (before and after), whoever
# reads the aggregates recomputes them first (`feeds/sums.py`).
feed_profile_dirty = Table(
    "feed_profile_dirty",
    Base.metadata,
    Column("profile_id", Integer, primary_key=True),
)

# Clients whose facts are out of date: a survey write marks its client here (one cheap upsert) instead of
# recomputing the facts on the hop that submitted it; every reader of the aggregates catches up first
# (`feeds/stale.py`).
feed_facts_stale = Table(
    "feed_facts_stale",
    Base.metadata,
    Column("client_id", Integer, primary_key=True),
    Column("marked_at", DateTime(timezone=True), nullable=False),
)
