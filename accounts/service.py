"""Client and staff look-up by phone, activation codes, and PIN set/verify/lock/unlock/reset.

Called by the conversation shell (USSD/SMS/Telegram), the CLI and the API with an open `Session`; nothing here
commits. Every lock, unlock, reset and code issue writes a `PinAudit` row. PINs and codes exist in plaintext only as
arguments: they are stored as argon2id hashes and never logged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from accounts.limiter import AttemptLimiter
from accounts.models import ActivationCode, Client, ClientPhone, Office, PinAudit, Staff
from accounts.phones import normalise_phone
from accounts.pins import hash_secret, new_activation_code, secret_matches, weak_pin_reason
from db import as_utc
from locales import normalise_locale
from settings import Settings

logger = logging.getLogger(__name__)

MAX_CODE_ATTEMPTS = 5  # wrong tries before an activation code is spent

ACTION_CODE_ISSUED = "activation_code_issued"
ACTION_ACTIVATED = "activated"
ACTION_PIN_SET = "pin_set"
ACTION_LOCKED = "locked"
ACTION_UNLOCKED = "unlocked"
ACTION_RESET = "reset"


@dataclass(frozen=True)
class PinCheck:
    """The outcome of one PIN attempt; `locked_minutes` > 0 means no attempts are accepted for that long."""

    ok: bool
    attempts_left: int
    locked_minutes: int = 0
    needs_activation: bool = False  # no PIN set yet (new client, or reset by an officer)


# --- look-ups -------------------------------------------------------------------------------------------------

# Built once, the phone bound at each call: building the statement on every call (its clauses, then its cache key
# from them) cost a third of these look-ups, which run on every USSD session's first hop.
_CLIENTS_ON_PHONE = (
    select(Client).join(ClientPhone).where(ClientPhone.phone == bindparam("phone")).order_by(Client.name, Client.id)
)
_STAFF_ON_PHONE = select(Staff).where(Staff.phone == bindparam("phone"))


def clients_on_phone(session: Session, phone: str, *, default_region: str | None = None) -> list[Client]:
    """Every client using `phone` (a shared phone gives several), in a stable order."""
    e164 = normalise_phone(phone, default_region)
    if e164 is None:
        return []
    return list(session.scalars(_CLIENTS_ON_PHONE, {"phone": e164}).unique())


def staff_on_phone(session: Session, phone: str, *, default_region: str | None = None) -> Staff | None:
    e164 = normalise_phone(phone, default_region)
    if e164 is None:
        return None
    return session.scalars(_STAFF_ON_PHONE, {"phone": e164}).first()


def find_clients(session: Session, phone_or_external_id: str, *, default_region: str | None = None) -> list[Client]:
    """Clients matching an external id exactly, else those on the phone number."""
    who = phone_or_external_id.strip()
    by_id = client_by_external_id(session, who)
    if by_id is not None:
        return [by_id]
    return clients_on_phone(session, who, default_region=default_region)


def client_by_external_id(session: Session, typed: str) -> Client | None:
    """The client meant by an external id as a person typed it: exactly, else in any case (a feature phone's keypad
    types lower case first, and an officer copies "kc-0002" from a card printed "KC-0002"). None when unknown, or
    when only the case-blind match finds more than one client."""
    wanted = typed.strip()
    for candidate in dict.fromkeys((wanted, wanted.upper())):  # the unique index answers these two
        found = session.scalars(select(Client).where(Client.external_id == candidate)).first()
        if found is not None:
            return found
    query = select(Client).where(func.upper(Client.external_id) == wanted.upper()).limit(2)
    matches = session.scalars(query).all()
    return matches[0] if len(matches) == 1 else None


def find_client(session: Session, phone_or_external_id: str, *, default_region: str | None = None) -> Client | None:
    """The one client meant by an external id or phone; None when unknown or when several share the phone."""
    found = find_clients(session, phone_or_external_id, default_region=default_region)
    return found[0] if len(found) == 1 else None


def find_staff(session: Session, phone_or_external_id: str, *, default_region: str | None = None) -> Staff | None:
    who = phone_or_external_id.strip()
    staff = session.scalars(select(Staff).where(Staff.external_id == who)).first()
    return staff or staff_on_phone(session, who, default_region=default_region)


# --- activation codes -----------------------------------------------------------------------------------------


def issue_activation_code(session: Session, client: Client, *, issued_by: str, now: datetime, ttl_hours: int) -> str:
    """A fresh 6-digit one-time code for `client` (returned once; only its hash is kept). Older codes stop working."""
    for previous in _open_codes(session, client.id, now):
        previous.used_at = now
    code = new_activation_code()
    session.add(
        ActivationCode(
            client_id=client.id,
            code_hash=hash_secret(code),
            issued_by=issued_by,
            issued_at=now,
            expires_at=now + timedelta(hours=ttl_hours),
            failed_attempts=0,
        )
    )
    _audit(session, client.id, ACTION_CODE_ISSUED, issued_by, now)
    session.flush()
    return code


def activate(session: Session, client_id: int, code: str, *, now: datetime, timezone: str = "UTC") -> bool:
    """True when `code` matches the client's latest unexpired unused code. The code is spent when a PIN is set
    (`set_pin`), not here: a USSD session that drops at "Choose a new PIN" leaves the client a code that still
    works, instead of a trip to the branch. A few wrong tries spend it. `activated_on` is the day on the MFI's
    calendar (`timezone`)."""
    latest = session.scalars(
        select(ActivationCode)
        .where(ActivationCode.client_id == client_id, ActivationCode.used_at.is_(None))
        .order_by(ActivationCode.issued_at.desc(), ActivationCode.id.desc())
        .limit(1)
        .with_for_update()
    ).first()
    if latest is None or as_utc(latest.expires_at) <= now:
        return False
    if not secret_matches(latest.code_hash, code.strip()):
        latest.failed_attempts = (latest.failed_attempts or 0) + 1
        if latest.failed_attempts >= MAX_CODE_ATTEMPTS:
            latest.used_at = now
        return False
    client = session.get_one(Client, client_id)
    client.activated_on = client.activated_on or now.astimezone(ZoneInfo(timezone)).date()
    _audit(session, client_id, ACTION_ACTIVATED, "client", now)
    return True


def expiry_of_latest_code(session: Session, client_id: int) -> datetime | None:
    latest = session.scalars(
        select(ActivationCode).where(ActivationCode.client_id == client_id).order_by(ActivationCode.id.desc())
    ).first()
    return as_utc(latest.expires_at) if latest else None


def _open_codes(session: Session, client_id: int, now: datetime) -> list[ActivationCode]:
    query = select(ActivationCode).where(ActivationCode.client_id == client_id, ActivationCode.used_at.is_(None))
    return [code for code in session.scalars(query) if as_utc(code.expires_at) > now]


# --- PINs -----------------------------------------------------------------------------------------------------


def set_pin(session: Session, client_id: int, pin: str, *, phone: str | None, now: datetime) -> str | None:
    """Store a new PIN, spending the client's open activation codes; None when accepted, else the msgid saying why
    it was refused (weak PIN)."""
    reason = weak_pin_reason(pin, phone)
    if reason is not None:
        return reason
    for code in _open_codes(session, client_id, now):
        code.used_at = now
    client = session.get_one(Client, client_id)
    client.pin_hash = hash_secret(pin)
    client.pin_failed_attempts = 0
    client.pin_locked_until = None
    _audit(session, client_id, ACTION_PIN_SET, "client", now)
    return None


def verify_pin(
    session: Session,
    limiter: AttemptLimiter,
    client_id: int,
    pin: str,
    *,
    phone: str | None,
    now: datetime,
    settings: Settings,
) -> PinCheck:
    """Check one PIN attempt: locked accounts and rate-limited phones/clients are refused before any comparison."""
    client = session.scalars(select(Client).where(Client.id == client_id).with_for_update()).one()
    if not client.pin_hash:
        return PinCheck(False, 0, 0, needs_activation=True)
    locked = minutes_locked(client, now)
    if locked:
        return PinCheck(False, 0, locked)
    slot = limiter.take(phone=phone, client_id=client_id, now=now)
    if not slot.allowed:
        logger.warning("PIN attempts rate-limited for client %s", client_id)
        return PinCheck(False, 0, slot.retry_after_minutes)
    if secret_matches(client.pin_hash, pin):
        limiter.give_back(slot)
        client.pin_failed_attempts = 0
        return PinCheck(True, settings.pin_max_attempts)
    return _wrong_pin(session, client, now, settings)


def _wrong_pin(session: Session, client: Client, now: datetime, settings: Settings) -> PinCheck:
    client.pin_failed_attempts = (client.pin_failed_attempts or 0) + 1
    left = settings.pin_max_attempts - client.pin_failed_attempts
    if left > 0:
        return PinCheck(False, left)
    client.pin_failed_attempts = 0
    client.pin_locked_until = now + timedelta(minutes=settings.pin_lock_minutes)
    _audit(session, client.id, ACTION_LOCKED, "system", now)
    logger.info("client %s locked after %s wrong PINs", client.id, settings.pin_max_attempts)
    return PinCheck(False, 0, settings.pin_lock_minutes)


def minutes_locked(client: Client, now: datetime) -> int:
    """Whole minutes (rounded up) until the client's PIN lock lifts; 0 when it is not locked."""
    if client.pin_locked_until is None:
        return 0
    remaining = (as_utc(client.pin_locked_until) - now).total_seconds()
    return math.ceil(remaining / 60) if remaining > 0 else 0


def is_locked(client: Client, now: datetime) -> bool:
    return minutes_locked(client, now) > 0


def unlock(
    session: Session, client: Client, *, actor: str, now: datetime, limiter: AttemptLimiter | None = None
) -> None:
    """An officer lifts a lock (and the client's rate-limit window); the PIN stays as it was."""
    client.pin_locked_until = None
    client.pin_failed_attempts = 0
    if limiter is not None:
        limiter.clear_client(client.id, now, phones=[entry.phone for entry in client.phones])
    _audit(session, client.id, ACTION_UNLOCKED, actor, now)


def reset_pin(
    session: Session, client: Client, *, actor: str, now: datetime, limiter: AttemptLimiter | None = None
) -> None:
    """Officer-assisted reset: PIN forgotten, open codes spent; the client re-activates with a new code."""
    client.pin_hash = None
    client.pin_locked_until = None
    client.pin_failed_attempts = 0
    for code in _open_codes(session, client.id, now):
        code.used_at = now
    if limiter is not None:
        limiter.clear_client(client.id, now, phones=[entry.phone for entry in client.phones])
    _audit(session, client.id, ACTION_RESET, actor, now)


def pin_history(session: Session, client_id: int) -> list[PinAudit]:
    """The client's audit trail (codes issued, activations, locks, unlocks, resets), oldest first."""
    query = select(PinAudit).where(PinAudit.client_id == client_id).order_by(PinAudit.at, PinAudit.id)
    return list(session.scalars(query))


def _audit(session: Session, client_id: int, action: str, actor: str, now: datetime) -> None:
    session.add(PinAudit(client_id=client_id, action=action, actor=actor, at=now))


def person_language(session: Session, person: Client | Staff | None, default: str) -> str:
    """A person's own language, else their office's (or its parents') default, else `default`."""
    if person is None:
        return default
    if person.language:
        return normalise_locale(person.language, default)
    return _office_language(session, person, default)  # walked only when the person has no language of their own


def _office_language(session: Session, person: Client | Staff | None, default: str) -> str:
    office = session.get(Office, person.office_id) if person is not None else None
    while office is not None:
        if office.default_language:
            return normalise_locale(office.default_language, default)
        office = session.get(Office, office.parent_id) if office.parent_id else None
    return default
