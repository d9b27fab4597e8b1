"""Small functions that put test data in the database, so tests say what matters and default the rest.

Every function takes a SQLAlchemy `Session`, adds rows, flushes (so ids exist) and returns the row. None of them
commits: call them inside `with services.transaction() as session:`. Unique fields get a fresh value from a
counter unless you pass one, so several calls never collide.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from accounts.models import Client, ClientPhone, Office, Staff

if TYPE_CHECKING:
    from surveys.service import PpiConfig

_sequence = itertools.count(1)

# The MFI bands of the brief, used by the channel tests.
STANDARD_BANDS = "0-24:Very poor,25-44:Poor,45-69:At risk,70-100:Non-poor"
# The demo client most channel tests dial from.
CLIENT_PHONE = "+254700000002"
# The loan officer's phone of the officer-assisted tests.
OFFICER_PHONE = "+254711000001"

# A fixed "now" for tests that need one: 2024-06-15 09:00 UTC (12:00 in Nairobi).
NOW = datetime(2024, 6, 15, 9, 0, tzinfo=UTC)


def _next() -> int:
    return next(_sequence)


def make_office(
    session: Session,
    *,
    external_id: str | None = None,
    name: str | None = None,
    level: str = "branch",
    parent: Office | None = None,
    country_code: str | None = "KE",
    default_language: str | None = None,
) -> Office:
    """An office under `parent` (or a root office), with its materialized path ("/1/4/") filled in."""
    number = _next()
    office = Office(
        external_id=external_id or f"OFF{number:04d}",
        name=name or f"Office {number}",
        level=level,
        parent_id=parent.id if parent else None,
        country_code=country_code,
        default_language=default_language,
    )
    session.add(office)
    session.flush()
    office.path = f"{parent.path if parent else '/'}{office.id}/"
    session.flush()
    return office


def make_staff(
    session: Session,
    *,
    external_id: str | None = None,
    name: str | None = None,
    office: Office | None = None,
    phone: str | None = None,
    role: str = "loan_officer",
    language: str | None = None,
) -> Staff:
    """A staff member (a loan officer by default) in `office` (a new branch if not given)."""
    number = _next()
    staff = Staff(
        external_id=external_id or f"S{number:04d}",
        name=name or f"Officer {number}",
        office_id=(office or make_office(session)).id,
        phone=phone,
        role=role,
        language=language,
    )
    session.add(staff)
    session.flush()
    return staff


def make_client(
    session: Session,
    *,
    external_id: str | None = None,
    name: str | None = None,
    phones: Sequence[str] = (),
    office: Office | None = None,
    officer: Staff | None = None,
    language: str | None = None,
    activated_on: date | None = None,
) -> Client:
    """A client in `office` (a new branch if not given) with the given E.164 phones ("+254700000001")."""
    number = _next()
    client = Client(
        external_id=external_id or f"C{number:05d}",
        name=name or f"Client {number}",
        office_id=(office or make_office(session)).id,
        officer_id=officer.id if officer else None,
        language=language,
        activated_on=activated_on,
        phones=[ClientPhone(phone=phone) for phone in phones],
    )
    session.add(client)
    session.flush()
    return client


def configure_ppi(
    session: Session,
    *,
    scorecard_id: str = "KEN-2024",
    status: str = "active",
    headline_line: str = "absolute-poverty-line",
    bands: str | None = None,
    show_band_to_client: bool = False,
    now: datetime = NOW,
) -> PpiConfig:
    """Save the MFI's PPI settings through `surveys.service.configure` (the same checks as the CLI).

    Returns the `surveys.service.PpiConfig`. Bands use the CLI syntax: "0-24:Very poor,25-49:Poor,50-100:Better off".
    """
    from surveys import service

    return service.configure(
        session,
        scorecard_id=scorecard_id,
        status=status,
        headline_line=headline_line,
        bands=bands,
        show_band_to_client=show_band_to_client,
        now=now,
    )
