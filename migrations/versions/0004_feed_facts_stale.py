"""Clients whose feed facts are out of date (`feeds/stale.py`): survey writes mark them instead of recomputing the
facts on the submitting hop; readers of the aggregates catch up first. Starts empty: every fact is current when
this runs (the previous release refreshed them in the writers' transactions).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_facts_stale",
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_feed_facts_stale")),
    )


def downgrade() -> None:
    op.drop_table("feed_facts_stale")
