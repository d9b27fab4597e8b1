"""The append-only consent ledger.

Rows are only ever inserted: the ORM refuses updates and deletes (the mapper and session events below), and on
PostgreSQL a trigger created by migration 0002 refuses them too. The privacy flag is derived from the latest event.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, String, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

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


class LedgerIsAppendOnly(RuntimeError):
    """Code tried to change or delete a consent event; the ledger only grows."""


@event.listens_for(ConsentEvent, "before_update")
def _refuse_update(_mapper: object, _connection: object, target: ConsentEvent) -> None:
    raise LedgerIsAppendOnly(f"consent event {target.id} cannot be changed: record a new event instead")


@event.listens_for(ConsentEvent, "before_delete")
def _refuse_delete(_mapper: object, _connection: object, target: ConsentEvent) -> None:
    raise LedgerIsAppendOnly(f"consent event {target.id} cannot be deleted: record a revocation instead")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_change(state: ORMExecuteState) -> None:
    """Bulk `update(ConsentEvent)` / `delete(ConsentEvent)` skip the mapper events above, so refuse them here."""
    if not (state.is_update or state.is_delete):
        return
    if any(mapper.class_ is ConsentEvent for mapper in state.all_mappers):
        raise LedgerIsAppendOnly("consent events cannot be changed or deleted in bulk")
