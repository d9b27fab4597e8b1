"""The append-only consent ledger.

Rows are only ever inserted: the ORM refuses updates and deletes (see consent.ledger), and on PostgreSQL a
trigger created by the migration refuses them too. The privacy flag is derived from the latest event.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from db import Base, utcnow


class ConsentEvent(Base):
    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_client_purpose", "client_id", "purpose", "lender", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    purpose: Mapped[str] = mapped_column(String(64))
    lender: Mapped[str | None] = mapped_column(String(64))  # None: any lender
    granted: Mapped[bool] = mapped_column(Boolean)
    text_version: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
