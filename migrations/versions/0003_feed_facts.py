"""The feed's fact table (one row per client, period kind and period) and the strings it refers to, back-filled.

On PostgreSQL `feed_facts` is partitioned by period kind, so a feed build scans only its own kind's rows. The
back-fill runs `feeds.facts.rebuild_facts`, the same code as `impact-connect feed rebuild-facts` (about 80 s for 2M
surveys) and locks only the new table; surveys that processes of the previous release record meanwhile are not in
it, so run `impact-connect feed rebuild-facts` once the new release serves (README, Production deployment).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PERIOD_KINDS = ("month", "quarter", "year")
FACT_LINES = 20


def upgrade() -> None:
    op.create_table(
        "feed_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_keys")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_feed_keys_kind_value")),
    )
    op.create_table(
        "feed_facts",
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("period_kind", sa.String(length=8), nullable=False),
        sa.Column("ord", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("line_set_id", sa.Integer(), nullable=True),
        sa.Column("surveys", sa.Integer(), nullable=False),
        sa.Column("headline_score", sa.Integer(), nullable=True),
        sa.Column("band_id", sa.Integer(), nullable=True),
        sa.Column("first_band_id", sa.Integer(), nullable=True),
        sa.Column("prev_band_id", sa.Integer(), nullable=True),
        *(sa.Column(f"line_{position}", sa.Float(), nullable=True) for position in range(1, FACT_LINES + 1)),
        sa.PrimaryKeyConstraint("client_id", "period_kind", "ord", name=op.f("pk_feed_facts")),
        postgresql_partition_by="LIST (period_kind)",
    )
    if op.get_bind().dialect.name == "postgresql":
        for kind in PERIOD_KINDS:
            op.execute(f"CREATE TABLE feed_facts_{kind} PARTITION OF feed_facts FOR VALUES IN ('{kind}')")
    from feeds.facts import rebuild_facts

    rebuild_facts(Session(bind=op.get_bind()), with_sums=False)  # the profile sums come in 0005


def downgrade() -> None:
    op.drop_table("feed_facts")  # drops its partitions with it
    op.drop_table("feed_keys")
