"""Tables for PPI settings and survey responses.

A response keeps the scorecard version it was taken with, its answers, and one row per poverty line with the
score and likelihood, so aggregates (poverty rate per line = mean likelihood) are plain SQL.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db import Base, utcnow
from scoring.scorecard import BAND_LABEL_MAX

SUBMISSION_KEY_LENGTH = 100  # a submission key longer than this is hashed by whoever makes it


class PpiSettings(Base):
    """The MFI's PPI configuration (one row)."""

    __tablename__ = "ppi_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    scorecard_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | inactive
    headline_line: Mapped[str] = mapped_column(String(64))
    bands: Mapped[list[dict[str, object]] | None] = mapped_column(JSON)  # [{"low":0,"high":24,"label":"Very poor"}]
    show_band_to_client: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class SurveyResponse(Base):
    __tablename__ = "survey_responses"
    __table_args__ = (Index("ix_survey_responses_client_date", "client_id", "date_collected"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    scorecard_id: Mapped[str] = mapped_column(String(32))
    date_collected: Mapped[date] = mapped_column(Date, index=True)
    mode: Mapped[str] = mapped_column(String(16))  # self | officer
    channel: Mapped[str] = mapped_column(String(16))  # at-ussd, at-sms, telegram, console, api, cli
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    headline_line: Mapped[str | None] = mapped_column(String(64))
    headline_score: Mapped[int | None] = mapped_column(Integer)
    headline_likelihood: Mapped[float | None] = mapped_column(Float)
    band: Mapped[str | None] = mapped_column(String(BAND_LABEL_MAX))
    # Dedupes a repeated submit (an SMS form sent twice, a USSD submit hop run again).
    submission_key: Mapped[str | None] = mapped_column(String(SUBMISSION_KEY_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    answers: Mapped[list[SurveyAnswer]] = relationship(
        cascade="all, delete-orphan", order_by="SurveyAnswer.question_number"
    )
    line_results: Mapped[list[SurveyLineResult]] = relationship(cascade="all, delete-orphan")


class SurveyAnswer(Base):
    __tablename__ = "survey_answers"

    survey_id: Mapped[int] = mapped_column(ForeignKey("survey_responses.id", ondelete="CASCADE"), primary_key=True)
    question_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    option_position: Mapped[int] = mapped_column(Integer)  # 1-based, published order


class SurveyLineResult(Base):
    __tablename__ = "survey_line_results"

    survey_id: Mapped[int] = mapped_column(ForeignKey("survey_responses.id", ondelete="CASCADE"), primary_key=True)
    line_slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    likelihood: Mapped[float] = mapped_column(Float)
