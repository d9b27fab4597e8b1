"""The consent ledger: what the client was asked, what they answered, and whether data may be shared now.

Rule for lenders (documented in the API too): the flag for a lender is the latest event that concerns that lender,
either an event naming it or an event for any lender (`lender=None`). So a grant for any lender covers every lender;
a later per-lender revoke or grant overrides it for that lender only; a later any-lender event (say a revoke)
overrides every earlier per-lender event. Asked without a lender, only any-lender events count. "Latest" is the
order of insertion: the ledger is append-only, so the newest row is the newest decision.

Message opt-out (STOP, `Client.message_opt_out`) is a separate switch and is never read or written here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from accounts.models import Client, Staff
from accounts.service import person_language
from api.models import ApiKey
from consent.models import ConsentEvent
from db import insert_once
from locales import normalise_locale

SHARE_WITH_LENDERS = "share_with_lenders"
PURPOSES = (SHARE_WITH_LENDERS,)
TEXTS = Path(__file__).resolve().parent / "texts"
FALLBACK_LANGUAGE = "en"


class ConsentError(ValueError):
    """A consent event cannot be recorded as asked (unknown client or purpose, paper consent without officer)."""


@dataclass(frozen=True)
class ConsentText:
    version: str
    language: str
    text: str
    what_is_shared: str


def consent_text(language: str | None, purpose: str = SHARE_WITH_LENDERS) -> ConsentText:
    """The current consent wording for `purpose` in `language` (English when the language has no text)."""
    document = _current_document(purpose)
    code = normalise_locale(language, FALLBACK_LANGUAGE)
    texts = document["texts"]
    if code not in texts:
        code = FALLBACK_LANGUAGE
    return ConsentText(document["version"], code, texts[code]["text"], texts[code]["what_is_shared"])


@cache
def _current_document(purpose: str) -> dict:  # type: ignore[type-arg]
    versions = sorted(TEXTS.glob(f"{purpose}.v*.json"), key=lambda path: int(path.stem.rsplit(".v", 1)[1]))
    if not versions:
        raise ConsentError(f"no consent text for purpose {purpose!r}")
    return json.loads(versions[-1].read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def record(
    session: Session,
    client_id: int,
    *,
    granted: bool,
    purpose: str = SHARE_WITH_LENDERS,
    lender: str | None = None,
    text_version: str,
    language: str,
    channel: str,
    provider_message_id: str | None = None,
    officer_id: int | None = None,
    now: datetime,
) -> ConsentEvent:
    """Append a grant or a revocation; a provider message id already recorded returns the existing event."""
    _check_event(session, client_id, purpose=purpose, channel=channel, officer_id=officer_id)
    event = ConsentEvent(
        client_id=client_id,
        purpose=purpose,
        lender=lender_code(lender),
        granted=granted,
        text_version=text_version,
        language=language,
        channel=channel,
        provider_message_id=provider_message_id,
        officer_id=officer_id,
        recorded_at=now,
    )
    # The same provider message arriving twice at once: the second request gets the event the first one recorded.
    recorded = (lambda: _by_message_id(session, provider_message_id)) if provider_message_id else (lambda: None)
    return insert_once(session, event, recorded)


def _check_event(session: Session, client_id: int, *, purpose: str, channel: str, officer_id: int | None) -> None:
    if purpose not in PURPOSES:
        raise ConsentError(f"unknown consent purpose {purpose!r}")
    if session.get(Client, client_id) is None:
        raise ConsentError(f"no client with id {client_id}")
    if channel == "paper" and officer_id is None:
        raise ConsentError("paper consent must name the officer who collected it")


def _by_message_id(session: Session, provider_message_id: str) -> ConsentEvent | None:
    return session.scalar(select(ConsentEvent).where(ConsentEvent.provider_message_id == provider_message_id))


def is_sharing(
    session: Session, client_id: int, purpose: str = SHARE_WITH_LENDERS, lender: str | None = None
) -> bool | None:
    """True or False from the latest event concerning `lender` (see the module rule); None if never asked."""
    latest = session.scalar(
        select(ConsentEvent.granted)
        .where(ConsentEvent.client_id == client_id, ConsentEvent.purpose == purpose, _concerns(lender))
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )
    return latest


def history(session: Session, client_id: int) -> list[ConsentEvent]:
    """Every consent event of the client, oldest first."""
    return list(session.scalars(select(ConsentEvent).where(ConsentEvent.client_id == client_id).order_by("id")))


def sharing_client_ids(purpose: str = SHARE_WITH_LENDERS, lender: str | None = None) -> Select[tuple[int]]:
    """A SELECT of the ids of clients currently sharing for `purpose` with `lender`, for use in larger queries."""
    latest = (
        select(ConsentEvent.client_id, func.max(ConsentEvent.id).label("last_id"))
        .where(ConsentEvent.purpose == purpose, _concerns(lender))
        .group_by(ConsentEvent.client_id)
        .subquery()
    )
    return (
        select(latest.c.client_id)
        .join(ConsentEvent, ConsentEvent.id == latest.c.last_id)
        .where(ConsentEvent.granted.is_(True))
    )


def _concerns(lender: str | None) -> ColumnElement[bool]:
    code = lender_code(lender)
    if code is None:
        return ConsentEvent.lender.is_(None)
    return or_(
        ConsentEvent.lender.is_(None), func.lower(ConsentEvent.lender) == code
    )  # lower(): events from before codes were normalised


def lender_code(raw: str | None) -> str | None:
    """A lender's code as stored and compared, in consent events and API keys alike: " Kiva " is "kiva"."""
    code = " ".join((raw or "").split()).lower()
    return code or None


def history_export(session: Session, client_id: int) -> list[dict[str, object]]:
    """The client's consent history as JSON-ready dicts (officers by external id), for the CLI and the API."""
    events = history(session, client_id)
    officer_ids = {event.officer_id for event in events if event.officer_id is not None}
    rows = session.execute(select(Staff.id, Staff.external_id).where(Staff.id.in_(officer_ids))).tuples()
    officers = dict(rows.all())
    return [
        {
            "id": event.id,
            "purpose": event.purpose,
            "lender": event.lender,
            "granted": event.granted,
            "text_version": event.text_version,
            "language": event.language,
            "channel": event.channel,
            "provider_message_id": event.provider_message_id,
            "officer": officers.get(event.officer_id) if event.officer_id is not None else None,
            "recorded_at": _utc_iso(event.recorded_at),
        }
        for event in events
    ]


def _lender_codes(session: Session) -> set[str]:
    """The lenders API keys were made for (revoked ones too: a revocation must reach a lender whose key is off)."""
    return {code for raw in session.scalars(select(ApiKey.lender).distinct()) if (code := lender_code(raw))}


def _utc_iso(moment: datetime) -> str:
    """RFC 3339 with an offset; SQLite hands back naive datetimes, which we store in UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def record_paper(
    session: Session,
    client: Client,
    *,
    granted: bool,
    officer: str,
    lender: str | None = None,
    language: str | None = None,
    default_language: str = FALLBACK_LANGUAGE,
    now: datetime,
) -> ConsentEvent:
    """Record consent an officer collected on paper; `officer` is the staff external id (e.g. "S001")."""
    staff = session.scalar(select(Staff).where(Staff.external_id == officer))
    if staff is None:
        raise ConsentError(f"no staff member with id {officer!r}")
    texts = _current_document(SHARE_WITH_LENDERS)["texts"]
    if language is not None and normalise_locale(language, "") not in texts:
        raise ConsentError(f"no consent text in {language!r}; there is one in {', '.join(sorted(texts))}")
    code = lender_code(lender)
    if code is not None:
        lenders = _lender_codes(session)
        if code not in lenders:
            known = ", ".join(sorted(lenders)) or "none yet"
            raise ConsentError(f"no API key is for lender {code!r} (lenders with keys: {known}); create the key first")
    text = consent_text(language or person_language(session, client, default_language))
    return record(
        session,
        client.id,
        granted=granted,
        lender=code,
        text_version=text.version,
        language=text.language,
        channel="paper",
        officer_id=staff.id,
        now=now,
    )
