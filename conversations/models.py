"""The durable survey draft: every answer lands here the moment it is given, so a dropped USSD session (or a
Redis outage) loses nothing and the client can resume on the next dial or on another channel."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db import Base, utcnow


class ConversationDraft(Base):
    __tablename__ = "conversation_drafts"
    __table_args__ = (UniqueConstraint("client_id", "mode"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    mode: Mapped[str] = mapped_column(String(16))  # self | officer
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    scorecard_id: Mapped[str] = mapped_column(String(32))
    answers: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)  # question index (str) -> option position
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
