"""Make the consent ledger append-only in PostgreSQL: a trigger refuses UPDATE and DELETE.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION consent_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'consent_events is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
"""
TRIGGER = """
CREATE TRIGGER consent_events_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON consent_events
FOR EACH STATEMENT EXECUTE FUNCTION consent_events_append_only();
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no such guard; the ORM refuses changes on every back end
    op.execute(FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS consent_events_no_change ON consent_events")
    op.execute("DROP FUNCTION IF EXISTS consent_events_append_only()")
