"""Tables for the organisation and the client's money: offices, staff, clients, phones, funds, products,
accounts and transactions, plus the PIN audit trail and one-time activation codes.

The office tree has any depth; each office stores its materialized `path` ("/1/4/9/") so aggregates can roll a
subtree up with one indexed prefix match instead of recursive queries.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db import Base, utcnow
from scoring.scorecard import BAND_LABEL_MAX

MONEY = Numeric(16, 2)


class Office(Base):
    __tablename__ = "offices"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(32))  # country, region, branch, center, group, ...
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"), index=True)
    path: Mapped[str] = mapped_column(String(500), index=True, default="/")
    country_code: Mapped[str | None] = mapped_column(String(2))
    default_language: Mapped[str | None] = mapped_column(String(8))

    parent: Mapped[Office | None] = relationship(remote_side=[id])


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    role: Mapped[str] = mapped_column(String(32), default="loan_officer")
    language: Mapped[str | None] = mapped_column(String(8))


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    activated_on: Mapped[date | None] = mapped_column(Date)

    pin_hash: Mapped[str | None] = mapped_column(String(200))
    pin_failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    pin_locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)

    # Poverty status: a cache of the latest survey by date collected, rewritten by surveys.service.
    poverty_survey_id: Mapped[int | None] = mapped_column(Integer)
    poverty_scorecard_id: Mapped[str | None] = mapped_column(String(32))
    poverty_band: Mapped[str | None] = mapped_column(String(BAND_LABEL_MAX))
    poverty_date: Mapped[date | None] = mapped_column(Date)

    phones: Mapped[list[ClientPhone]] = relationship(back_populates="client", cascade="all, delete-orphan")


class ClientPhone(Base):
    """A phone number (E.164) a client uses; one phone may be shared by several clients."""

    __tablename__ = "client_phones"
    __table_args__ = (UniqueConstraint("client_id", "phone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    phone: Mapped[str] = mapped_column(String(20), index=True)

    client: Mapped[Client] = relationship(back_populates="phones")


class ChatLink(Base):
    """A Telegram chat linked to a phone number by the user sharing their contact."""

    __tablename__ = "chat_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(64), unique=True)  # "tg:<chat id>"
    phone: Mapped[str] = mapped_column(String(20), index=True)
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Fund(Base):
    __tablename__ = "funds"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class LoanProduct(Base):
    __tablename__ = "loan_products"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class Account(Base):
    """A loan or savings account in the built-in ledger (filled by the CSV import)."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # loan | savings
    product_id: Mapped[int | None] = mapped_column(ForeignKey("loan_products.id"), index=True)
    fund_id: Mapped[int | None] = mapped_column(ForeignKey("funds.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="active")
    opened_on: Mapped[date | None] = mapped_column(Date)
    principal: Mapped[Decimal | None] = mapped_column(MONEY)
    balance: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0"))  # outstanding for loans
    next_due_date: Mapped[date | None] = mapped_column(Date)
    next_due_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    arrears: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0"))


class Transaction(Base):
    __tablename__ = "transactions"
    __table_args__ = (Index("ix_transactions_account_date", "account_id", "occurred_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    occurred_on: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(32))  # disbursement, repayment, deposit, withdrawal, fee, interest
    amount: Mapped[Decimal] = mapped_column(MONEY)
    balance_after: Mapped[Decimal | None] = mapped_column(MONEY)


class PinAudit(Base):
    """Every lock, unlock, reset and activation-code issue, for the audit trail."""

    __tablename__ = "pin_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))  # "system", "staff:<external id>", "client"
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ActivationCode(Base):
    __tablename__ = "activation_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(200))
    issued_by: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Wrong tries against this code; after a few the code is spent, so 6 digits cannot be brute-forced.
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
