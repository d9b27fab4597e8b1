"""Client look-up by phone, activation codes, PINs (weak ones refused, lockout, cross-session rate limits), officer
unlock/reset with an audit trail, and the `clients` CLI."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from accounts import service
from accounts.cli import activation_code_command, audit_command, reset_pin_command, unlock_command
from accounts.limiter import AttemptLimiter
from accounts.models import ActivationCode, Client, ClientPhone, Office, PinAudit, Staff
from bootstrap import Services
from settings import Settings

NOW = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)
SHARED_PHONE = "+254711000111"
OTHER_PHONE = "+254722000222"
GOOD_PIN = "4821"


@pytest.fixture
def session(services: Services) -> Iterator[Session]:
    with services.transaction() as session:
        yield session


@pytest.fixture
def people(session: Session) -> dict[str, Client | Staff]:
    office = Office(external_id="B1", name="Kisumu", level="branch", path="/")
    session.add(office)
    session.flush()
    officer = Staff(external_id="S001", name="Otieno", office_id=office.id, phone="+254733000333")
    amina = Client(external_id="C-0042", name="Amina W.", office_id=office.id)
    amina.phones.append(ClientPhone(phone=SHARED_PHONE))
    baraka = Client(external_id="C-0043", name="Baraka O.", office_id=office.id)
    baraka.phones += [ClientPhone(phone=SHARED_PHONE), ClientPhone(phone=OTHER_PHONE)]
    session.add_all([officer, amina, baraka])
    session.flush()
    return {"officer": officer, "amina": amina, "baraka": baraka}


@pytest.fixture
def limiter(services: Services) -> AttemptLimiter:
    return AttemptLimiter(services.redis, key_secret="test")


def _with_pin(session: Session, client: Client, pin: str = GOOD_PIN) -> Client:
    assert service.set_pin(session, client.id, pin, phone=SHARED_PHONE, now=NOW) is None
    return client


def _audit_actions(session: Session, client: Client) -> list[str]:
    return [row.action for row in service.pin_history(session, client.id)]


# --- look-ups -----------------------------------------------------------------------------------------------------


def test_a_shared_phone_finds_every_client_on_it_in_any_written_form(session: Session, people: dict) -> None:
    assert [c.external_id for c in service.clients_on_phone(session, SHARED_PHONE)] == ["C-0042", "C-0043"]
    assert len(service.clients_on_phone(session, "0711 000111", default_region="KE")) == 2
    assert len(service.clients_on_phone(session, "254711000111")) == 2
    assert service.clients_on_phone(session, "not a phone") == []


def test_find_client_by_external_id_or_unshared_phone(session: Session, people: dict) -> None:
    assert service.find_client(session, "C-0042") is people["amina"]
    assert service.find_client(session, "0722000222", default_region="KE") is people["baraka"]
    assert service.find_client(session, SHARED_PHONE) is None  # ambiguous: two clients share it
    assert service.find_client(session, "C-9999") is None


def test_staff_found_by_phone(session: Session, people: dict) -> None:
    assert service.staff_on_phone(session, "0733000333", default_region="KE") is people["officer"]
    assert service.staff_on_phone(session, SHARED_PHONE) is None


# --- activation codes ---------------------------------------------------------------------------------------------


def test_activation_code_sets_one_pin_and_only_its_hash_is_stored(session: Session, people: dict) -> None:
    amina = people["amina"]
    code = service.issue_activation_code(session, amina, issued_by="staff:S001", now=NOW, ttl_hours=24)

    assert len(code) == 6 and code.isdigit()
    stored = session.scalars(select(ActivationCode)).one()
    assert code not in stored.code_hash and stored.code_hash.startswith("$argon2id$")
    assert service.activate(session, amina.id, code, now=NOW + timedelta(hours=1)) is True
    assert service.activate(session, amina.id, code, now=NOW + timedelta(hours=1)) is True  # no PIN set with it yet
    assert service.set_pin(session, amina.id, "7294", phone=None, now=NOW + timedelta(hours=1)) is None
    assert service.activate(session, amina.id, code, now=NOW + timedelta(hours=1)) is False  # spent by the PIN
    assert amina.activated_on == NOW.date()
    assert _audit_actions(session, amina) == ["activation_code_issued", "activated", "activated", "pin_set"]


def test_the_activation_day_is_the_mfis_not_utcs(session: Session, people: dict) -> None:
    amina = people["amina"]
    late_evening_utc = datetime(2024, 6, 14, 22, 30, tzinfo=UTC)  # 15 June, 01:30 in Nairobi
    code = service.issue_activation_code(session, amina, issued_by="staff:S001", now=late_evening_utc, ttl_hours=24)
    assert service.activate(session, amina.id, code, now=late_evening_utc, timezone="Africa/Nairobi")
    assert amina.activated_on == date(2024, 6, 15)


def test_activation_code_expires(session: Session, people: dict) -> None:
    amina = people["amina"]
    code = service.issue_activation_code(session, amina, issued_by="staff:S001", now=NOW, ttl_hours=24)

    assert service.activate(session, amina.id, code, now=NOW + timedelta(hours=24, seconds=1)) is False


def test_a_new_code_replaces_the_old_one(session: Session, people: dict) -> None:
    amina = people["amina"]
    first = service.issue_activation_code(session, amina, issued_by="staff:S001", now=NOW, ttl_hours=24)
    second = service.issue_activation_code(session, amina, issued_by="staff:S001", now=NOW, ttl_hours=24)

    assert first == second or service.activate(session, amina.id, first, now=NOW) is False
    assert service.activate(session, amina.id, second, now=NOW) is True


def test_a_code_is_spent_after_five_wrong_tries(session: Session, people: dict) -> None:
    amina = people["amina"]
    code = service.issue_activation_code(session, amina, issued_by="staff:S001", now=NOW, ttl_hours=24)
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    for _ in range(5):
        assert service.activate(session, amina.id, wrong, now=NOW) is False
    assert service.activate(session, amina.id, code, now=NOW) is False


def test_a_code_belongs_to_its_client(session: Session, people: dict) -> None:
    code = service.issue_activation_code(session, people["amina"], issued_by="staff:S001", now=NOW, ttl_hours=24)

    assert service.activate(session, people["baraka"].id, code, now=NOW) is False


# --- setting a PIN ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pin", "reason_word"),
    [
        ("0000", "repeated"),
        ("7777", "repeated"),
        ("1234", "sequence"),
        ("4321", "sequence"),
        ("2345", "sequence"),
        ("0111", "phone"),  # last four digits of +254711000111
        ("123", "4 digits"),
        ("48215", "4 digits"),
        ("48a1", "4 digits"),
        ("٤٨٢١", "4 digits"),  # Arabic-Indic digits are not keypad digits
    ],
)
def test_weak_pins_are_refused_with_a_reason(session: Session, people: dict, pin: str, reason_word: str) -> None:
    amina = people["amina"]

    reason = service.set_pin(session, amina.id, pin, phone=SHARED_PHONE, now=NOW)

    assert reason is not None and reason_word in reason
    assert amina.pin_hash is None


def test_a_pin_is_stored_only_as_an_argon2id_hash(session: Session, people: dict) -> None:
    amina = _with_pin(session, people["amina"])

    assert amina.pin_hash is not None and amina.pin_hash.startswith("$argon2id$")
    assert GOOD_PIN not in amina.pin_hash


def test_pins_never_reach_the_logs(
    session: Session, people: dict, limiter: AttemptLimiter, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    amina = _with_pin(session, people["amina"])
    for pin in ("9513", "9513", "9513", GOOD_PIN):
        service.verify_pin(session, limiter, amina.id, pin, phone=SHARED_PHONE, now=NOW, settings=settings)

    assert caplog.records  # the lock was logged ...
    assert not any("9513" in r.getMessage() or GOOD_PIN in r.getMessage() for r in caplog.records)  # ... no PIN


# --- verifying a PIN ----------------------------------------------------------------------------------------------


def test_correct_pin_is_accepted(session: Session, people: dict, limiter: AttemptLimiter, settings: Settings) -> None:
    amina = _with_pin(session, people["amina"])

    check = service.verify_pin(session, limiter, amina.id, GOOD_PIN, phone=SHARED_PHONE, now=NOW, settings=settings)

    assert check.ok and check.locked_minutes == 0


def test_client_without_a_pin_is_told_to_activate(
    session: Session, people: dict, limiter: AttemptLimiter, settings: Settings
) -> None:
    check = service.verify_pin(
        session, limiter, people["amina"].id, "4821", phone=SHARED_PHONE, now=NOW, settings=settings
    )

    assert not check.ok and check.needs_activation


def test_wrong_pins_count_down_then_lock_the_account(
    session: Session, people: dict, limiter: AttemptLimiter, settings: Settings
) -> None:
    amina = _with_pin(session, people["amina"])

    def attempt(pin: str, at: datetime) -> service.PinCheck:
        return service.verify_pin(session, limiter, amina.id, pin, phone=SHARED_PHONE, now=at, settings=settings)

    assert attempt("9513", NOW).attempts_left == 2
    assert attempt("9513", NOW).attempts_left == 1
    locked = attempt("9513", NOW)
    assert not locked.ok and locked.locked_minutes == settings.pin_lock_minutes
    assert not attempt(GOOD_PIN, NOW + timedelta(minutes=29)).ok  # even the right PIN waits out the lock
    assert attempt(GOOD_PIN, NOW + timedelta(minutes=29)).locked_minutes == 1
    assert attempt(GOOD_PIN, NOW + timedelta(minutes=31)).ok
    assert "locked" in _audit_actions(session, amina)


def test_a_correct_pin_resets_the_count(
    session: Session, people: dict, limiter: AttemptLimiter, settings: Settings
) -> None:
    amina = _with_pin(session, people["amina"])
    for pin in ("9513", "9513", GOOD_PIN, "9513"):
        check = service.verify_pin(session, limiter, amina.id, pin, phone=SHARED_PHONE, now=NOW, settings=settings)

    assert check.attempts_left == 2


def test_guessing_across_clients_on_a_shared_phone_is_stopped(
    session: Session, people: dict, limiter: AttemptLimiter, settings: Settings
) -> None:
    lenient = replace(settings, pin_max_attempts=100)  # only the cross-session limiter stands in the way
    amina, baraka = _with_pin(session, people["amina"]), _with_pin(session, people["baraka"])
    for guess in range(5):
        for client in (amina, baraka):
            pin = f"9{guess}13"
            service.verify_pin(session, limiter, client.id, pin, phone=SHARED_PHONE, now=NOW, settings=lenient)

    refused = service.verify_pin(session, limiter, amina.id, GOOD_PIN, phone=SHARED_PHONE, now=NOW, settings=lenient)

    assert not refused.ok and refused.locked_minutes == 60
    from_other_phone = service.verify_pin(
        session, limiter, baraka.id, GOOD_PIN, phone=OTHER_PHONE, now=NOW, settings=lenient
    )
    assert from_other_phone.ok


def test_guessing_one_client_from_many_phones_is_stopped(
    session: Session, people: dict, limiter: AttemptLimiter, settings: Settings
) -> None:
    lenient = replace(settings, pin_max_attempts=100)
    amina = _with_pin(session, people["amina"])
    for n in range(10):
        service.verify_pin(session, limiter, amina.id, "9513", phone=f"+2547990000{n:02d}", now=NOW, settings=lenient)

    check = service.verify_pin(session, limiter, amina.id, GOOD_PIN, phone="+254799000050", now=NOW, settings=lenient)

    assert not check.ok and check.locked_minutes > 0
    next_hour = NOW + timedelta(hours=1)
    assert service.verify_pin(
        session, limiter, amina.id, GOOD_PIN, phone=SHARED_PHONE, now=next_hour, settings=lenient
    ).ok


def test_correct_pins_do_not_use_up_the_rate_limit(
    session: Session, people: dict, limiter: AttemptLimiter, settings: Settings
) -> None:
    amina = _with_pin(session, people["amina"])

    checks = [
        service.verify_pin(session, limiter, amina.id, GOOD_PIN, phone=SHARED_PHONE, now=NOW, settings=settings)
        for _ in range(15)
    ]

    assert all(check.ok for check in checks)


# --- officer unlock and reset -------------------------------------------------------------------------------------


def test_officer_unlock_lets_the_client_straight_back_in(
    session: Session, people: dict, limiter: AttemptLimiter, settings: Settings
) -> None:
    amina = _with_pin(session, people["amina"])
    for _ in range(3):
        service.verify_pin(session, limiter, amina.id, "9513", phone=SHARED_PHONE, now=NOW, settings=settings)

    service.unlock(session, amina, actor="staff:S001", now=NOW, limiter=limiter)

    assert service.verify_pin(session, limiter, amina.id, GOOD_PIN, phone=SHARED_PHONE, now=NOW, settings=settings).ok
    audit = service.pin_history(session, amina.id)
    assert [(row.action, row.actor) for row in audit][-2:] == [("locked", "system"), ("unlocked", "staff:S001")]


def test_reset_forgets_the_pin_and_open_codes(
    session: Session, people: dict, limiter: AttemptLimiter, settings: Settings
) -> None:
    amina = _with_pin(session, people["amina"])
    old_code = service.issue_activation_code(session, amina, issued_by="staff:S001", now=NOW, ttl_hours=24)

    service.reset_pin(session, amina, actor="staff:S001", now=NOW, limiter=limiter)

    check = service.verify_pin(session, limiter, amina.id, GOOD_PIN, phone=SHARED_PHONE, now=NOW, settings=settings)
    assert check.needs_activation and not check.ok
    assert service.activate(session, amina.id, old_code, now=NOW) is False
    assert _audit_actions(session, amina)[-1] == "reset"


# --- the CLI ------------------------------------------------------------------------------------------------------


@pytest.fixture
def seeded(services: Services) -> None:
    with services.transaction() as session:
        office = Office(external_id="B1", name="Kisumu", level="branch", path="/")
        session.add(office)
        session.flush()
        session.add(Staff(external_id="S001", name="Otieno", office_id=office.id))
        amina = Client(external_id="C-0042", name="Amina W.", office_id=office.id)
        amina.phones.append(ClientPhone(phone=SHARED_PHONE))
        session.add(amina)


def test_cli_activation_code_prints_a_working_code_once(
    runner: FlaskCliRunner, services: Services, seeded: None
) -> None:
    result = runner.invoke(activation_code_command, ["0711000111", "--officer", "S001"])

    assert result.exit_code == 0, result.output
    code = result.output.split(": ")[1].split()[0]
    assert "sets one PIN and works until" in result.output
    with services.transaction() as session:
        client = service.find_client(session, "C-0042")
        assert client is not None and service.activate(session, client.id, code, now=datetime.now(UTC))


def test_cli_refuses_an_unknown_officer_or_client(runner: FlaskCliRunner, seeded: None) -> None:
    assert "no staff member" in runner.invoke(activation_code_command, ["C-0042", "--officer", "S999"]).output
    assert "no client" in runner.invoke(unlock_command, ["C-7777", "--officer", "S001"]).output


def test_cli_unlock_reset_and_audit(runner: FlaskCliRunner, services: Services, seeded: None) -> None:
    with services.transaction() as session:
        client = session.scalars(select(Client)).one()
        client.pin_locked_until = datetime.now(UTC) + timedelta(minutes=30)
        session.add(PinAudit(client_id=client.id, action="locked", actor="system", at=datetime.now(UTC)))

    assert runner.invoke(audit_command, ["C-0042"]).output.splitlines()[0].endswith("locked")
    assert runner.invoke(unlock_command, ["C-0042", "--officer", "S001"]).exit_code == 0
    assert runner.invoke(reset_pin_command, ["C-0042", "--officer", "S001"]).exit_code == 0

    audit = runner.invoke(audit_command, ["C-0042"]).output
    assert "PIN not set" in audit
    assert [line.split()[3] for line in audit.splitlines()[1:]] == ["locked", "unlocked", "reset"]
    assert audit.count("staff:S001") == 2


def test_cli_refuses_an_activation_code_for_a_client_who_has_a_pin(
    runner: FlaskCliRunner, services: Services, seeded: None
) -> None:
    with services.transaction() as session:
        amina = session.scalars(select(Client)).one()
        pin_hash = _with_pin(session, amina).pin_hash
        actions_before = _audit_actions(session, amina)

    result = runner.invoke(activation_code_command, ["C-0042", "--officer", "S001"])

    assert result.exit_code == 1
    assert "Amina W. (C-0042) already has a PIN" in result.output
    assert "reset it first: impact-connect clients reset-pin C-0042 --officer ..." in result.output
    assert "sets one PIN" not in result.output
    with services.transaction() as session:
        assert session.scalars(select(ActivationCode)).all() == []
        amina = session.scalars(select(Client)).one()
        assert _audit_actions(session, amina) == actions_before
        assert amina.pin_hash == pin_hash
    # after the reset the officer's next code is usable
    assert runner.invoke(reset_pin_command, ["C-0042", "--officer", "S001"]).exit_code == 0
    assert runner.invoke(activation_code_command, ["C-0042", "--officer", "S001"]).exit_code == 0
