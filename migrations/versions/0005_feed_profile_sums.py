"""The feed's profile sums (one row per client profile and period, summed from the facts) and the marks of
profiles whose sums are out of date, plus an index of the facts by profile (`feeds/sums.py`).

The sums start empty with every profile of the facts marked, so the first reader of the aggregates after this
release (or the facts catch-up job) computes them all: about 8 s at 1M clients, once.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SUM_COUNTS = 240  # as feeds/models.py
SUM_LINES = 60


def upgrade() -> None:
    op.create_index(op.f("ix_feed_facts_profile_id"), "feed_facts", ["profile_id"])
    op.create_table(
        "feed_profile_sums",
        sa.Column("period_kind", sa.String(length=8), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("ord", sa.Integer(), nullable=False),
        sa.Column("layout_id", sa.Integer(), nullable=False),
        sa.Column("member", sa.Integer(), nullable=False),
        sa.Column("clients", sa.Integer(), nullable=False),
        sa.Column("surveys", sa.Integer(), nullable=False),
        sa.Column("score_sum", sa.BigInteger(), nullable=True),
        sa.Column("score_n", sa.Integer(), nullable=False),
        *(sa.Column(f"count_{index}", sa.Integer(), nullable=True) for index in range(SUM_COUNTS)),
        *(sa.Column(f"line_sum_{index}", sa.Float(), nullable=True) for index in range(SUM_LINES)),
        sa.PrimaryKeyConstraint("period_kind", "profile_id", "ord", name=op.f("pk_feed_profile_sums")),
    )
    op.create_index(op.f("ix_feed_profile_sums_layout_id"), "feed_profile_sums", ["layout_id"])
    op.create_index(op.f("ix_feed_profile_sums_profile_id"), "feed_profile_sums", ["profile_id"])
    op.create_table(
        "feed_profile_dirty",
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_feed_profile_dirty")),
    )
    op.execute("INSERT INTO feed_profile_dirty (profile_id) SELECT DISTINCT profile_id FROM feed_facts")  # all


def downgrade() -> None:
    op.drop_table("feed_profile_dirty")
    op.drop_table("feed_profile_sums")
    op.drop_index(op.f("ix_feed_facts_profile_id"), table_name="feed_facts")
