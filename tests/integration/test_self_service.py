"""Client self-service over USSD: activation, PIN, balances, statement, progress, lockout, consent, language."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from accounts import service as accounts
from accounts.models import Account, Client, LoanProduct, Transaction
from consent.models import ConsentEvent
from db import utcnow
from tests.factories import configure_ppi, make_client
from tests.integration.test_ussd import Phone

PHONE = "+254700000002"
PIN = "4826"


@pytest.fixture
def activation_code(services):
    with services.transaction() as session:
        configure_ppi(session, bands="0-24:Very poor,25-44:Poor,45-69:At risk,70-100:Non-poor")
        client = make_client(session, external_id="C0002", name="Jane Wanjiru", phones=[PHONE], language="en")
        product = LoanProduct(external_id="P1", name="Biashara loan")
        session.add(product)
        session.flush()
        loan = Account(
            external_id="LN0001234",
            client_id=client.id,
            kind="loan",
            product_id=product.id,
            currency="KES",
            balance=Decimal("12500.00"),
            principal=Decimal("20000"),
            next_due_date=date.today() + timedelta(days=9),
            next_due_amount=Decimal("1500.00"),
            arrears=Decimal("0"),
        )
        session.add(loan)
        session.flush()
        for day in range(7):
            session.add(
                Transaction(
                    external_id=f"T{day}",
                    account_id=loan.id,
                    kind="repayment",
                    occurred_on=date.today() - timedelta(days=30 * day),
                    amount=Decimal("1500.00"),
                )
            )
        return accounts.issue_activation_code(session, client, issued_by="staff:S001", now=utcnow(), ttl_hours=24)


def _activate(phone: Phone, code: str) -> str:
    phone.dial()
    screen = phone.send("2")  # Balances: the PIN is not set yet, so activation starts
    assert "code" in screen.lower()
    screen = phone.send(code)
    assert "PIN" in screen
    screen = phone.send(PIN)
    assert "PIN" in screen
    return phone.send(PIN)


def _at_new_pin(client, code: str) -> tuple[Phone, str]:
    """A phone that dialled, chose balances and gave its activation code: the screen asks for a new PIN."""
    phone = Phone(client)
    phone.dial()
    phone.send("2")
    return phone, phone.send(code)


def test_a_client_activates_sets_a_pin_and_sees_masked_balances(client, services, activation_code):
    phone = Phone(client)
    balances = _activate(phone, activation_code)
    assert "**1234" in balances  # "••" is not GSM-7 and would halve the USSD screen
    assert "Ksh12,500.00" in balances  # English as written in Kenya (DEFAULT_REGION), not "KES12,500.00"
    assert "LN0001234" not in balances


def test_the_pin_never_reaches_redis_state(client, services, activation_code):
    phone, _ = _at_new_pin(client, activation_code)
    phone.send(PIN)
    for key in services.redis.keys("conv:*"):
        stored = services.redis.get(key).decode()
        assert PIN not in stored and activation_code not in stored


def test_three_wrong_pins_lock_the_account_and_an_officer_can_unlock(client, services, activation_code):
    _activate(Phone(client), activation_code)
    phone = Phone(client)
    phone.dial()
    phone.send("2")
    first = phone.send("1111")
    assert "2" in first  # attempts left
    phone.send("1112")
    locked = phone.send("1113")
    assert locked.startswith("END ") or "30" in locked
    with services.transaction() as session:
        jane = session.scalars(select(Client).where(Client.external_id == "C0002")).one()
        assert jane.pin_locked_until is not None
        accounts.unlock(session, jane, actor="staff:S001", now=utcnow())
    again = Phone(client)
    again.dial()
    again.send("2")
    assert "**1234" in again.send(PIN)


def test_a_pin_reset_while_the_client_is_at_the_pin_prompt_asks_for_activation(client, services, activation_code):
    _activate(Phone(client), activation_code)
    again = Phone(client)
    again.dial()
    assert "PIN" in again.send("2")
    with services.transaction() as session:
        accounts.reset_pin(session, session.scalars(select(Client)).one(), actor="staff:S001", now=utcnow())
    screen = again.send(PIN)
    assert "Enter the activation code" in screen and "Wrong PIN" not in screen


def test_a_verified_pin_is_asked_again_after_five_quiet_minutes_of_a_day_long_sms_session(services, activation_code):
    from conversations.service import handle_inbound
    from gateway.channels.base import sender_session
    from gateway.messages import Inbound

    start = utcnow()
    with services.transaction() as session:
        accounts.set_pin(session, session.scalars(select(Client)).one().id, PIN, phone=PHONE, now=start)
    sent = iter(range(1, 100))

    def sms(text: str, minute: float) -> str:
        inbound = Inbound("at-sms", PHONE, text, sender_session("at-sms", PHONE), provider_message_id=f"m{next(sent)}")
        return handle_inbound(services, inbound, now=start + timedelta(minutes=minute))[-1].text

    sms("Hi", 0)
    assert "Enter your PIN" in sms("2", 0)
    assert "**1234" in sms(PIN, 1)
    sms("00", 2)
    assert "**1234" in sms("2", 6)  # four minutes after the last message: still verified
    sms("00", 7)
    assert "Enter your PIN" in sms("2", 12.5)  # five and a half quiet minutes: asked again
    assert "**1234" in sms(PIN, 13)


def test_a_pin_change_or_balances_left_open_on_sms_close_after_five_quiet_minutes(services, activation_code):
    from conversations.service import handle_inbound
    from gateway.channels.base import sender_session
    from gateway.messages import Inbound

    start = utcnow()
    with services.transaction() as session:
        client_id = session.scalars(select(Client)).one().id
        accounts.set_pin(session, client_id, PIN, phone=PHONE, now=start)
        pin_hash = session.get(Client, client_id).pin_hash
    sent = iter(range(1, 100))

    def sms(text: str, minute: float) -> str:
        inbound = Inbound("at-sms", PHONE, text, sender_session("at-sms", PHONE), provider_message_id=f"m{next(sent)}")
        return handle_inbound(services, inbound, now=start + timedelta(minutes=minute))[-1].text

    sms("Hi", 0)
    sms("7", 0)  # change PIN
    assert "Choose a new PIN" in sms(PIN, 0)  # the owner walks away here
    later = sms("5829", 120)  # someone else picks the phone up two hours later
    assert "Main menu" in later and "Enter the new PIN again" not in later
    assert "Enter the new PIN again" not in sms("5829", 120)
    with services.transaction() as session:
        assert session.get(Client, client_id).pin_hash == pin_hash  # the PIN is the owner's still

    assert "Enter your PIN" in sms("2", 121)
    assert "**1234" in sms(PIN, 121)  # balances on show, then the phone is left
    assert "**1234" not in sms("9", 130)  # a wrong key would show the screen again: it is closed instead


def test_a_new_pin_confirmed_after_the_stage_expired_is_asked_again(client, services, activation_code):
    phone, _ = _at_new_pin(client, activation_code)
    phone.send(PIN)  # staged as a hash for five minutes
    with services.transaction() as session:
        services.redis.delete(f"pin-stage:{session.scalars(select(Client)).one().id}")  # the five minutes passed
    screen = phone.send(PIN)
    assert "That took too long" in screen and "did not match" not in screen
    with services.transaction() as session:
        assert session.scalars(select(Client)).one().pin_hash is None


def test_a_session_dropped_before_the_pin_was_chosen_leaves_the_code_working(client, services, activation_code):
    _, asked = _at_new_pin(client, activation_code)
    assert "Choose a new PIN" in asked  # then the network drops the session
    again, asked_again = _at_new_pin(client, activation_code)
    assert "Choose a new PIN" in asked_again
    again.send(PIN)
    assert "**1234" in again.send(PIN)  # PIN set, balances shown
    third = Phone(client)
    third.dial()
    assert "Enter your PIN" in third.send("2")  # the code was spent by the PIN: it is not asked for again


def test_a_weak_pin_is_refused(client, services, activation_code):
    phone, _ = _at_new_pin(client, activation_code)
    refused = phone.send("1234")
    assert refused.startswith("CON ") and "PIN" in refused
    with services.transaction() as session:
        assert session.scalars(select(Client)).one().pin_hash is None


def test_the_new_pin_screen_asks_for_the_four_digits_a_pin_has(client, services, activation_code):
    phone, asked = _at_new_pin(client, activation_code)
    assert "Choose a new PIN (4 digits):" in asked
    assert "A PIN has 4 digits." in phone.send("729461")  # six digits: refused by the screen that asked
    with services.transaction() as session:
        assert session.scalars(select(Client)).one().pin_hash is None


def test_mini_statement_lists_the_last_five_transactions(client, services, activation_code):
    _activate(Phone(client), activation_code)
    phone = Phone(client)
    phone.dial()
    phone.send("3")
    statement = phone.send(PIN)
    assert statement.count("1,500") == 5 or "98" in statement


def _consent_reply(phone: Phone, choice: str) -> str:
    phone.dial()
    screen = phone.send("5")
    while "\n1 " not in screen:  # the consent text may take a page before the choices
        assert "98" in screen
        screen = phone.send("98")
    assert "\n2 " in screen
    return phone.send(choice)


def test_consent_can_be_granted_and_revoked_from_the_menu(client, services, activation_code):
    _consent_reply(Phone(client), "1")
    _consent_reply(Phone(client), "2")
    with services.transaction() as session:
        events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        assert [event.granted for event in events] == [True, False]
        assert {event.channel for event in events} == {"at-ussd"}


def test_the_language_picker_switches_the_menu_to_swahili(client, services, activation_code):
    phone = Phone(client)
    phone.dial()
    languages = phone.send("6")
    assert "Kiswahili" in languages
    swahili_line = next(line for line in languages.split("\n") if "Kiswahili" in line)
    confirmed = phone.send(swahili_line.split()[0])
    assert confirmed.startswith("CON Lugha imebadilishwa: Kiswahili")  # confirmed in the language just chosen
    with services.transaction() as session:
        assert session.scalars(select(Client)).one().language == "sw"


def test_my_progress_shows_bands_over_time_and_the_direction_never_likelihoods(client, services, activation_code):
    from surveys import service as surveys

    with services.transaction() as session:
        configure_ppi(
            session, bands="0-24:Very poor,25-44:Poor,45-69:At risk,70-100:Non-poor", show_band_to_client=True
        )
        jane = session.scalars(select(Client)).one()
        low = [1, 1, 1, 2, 2, 2, 2, 2, 2, 2]
        high = [30, 10, 5, 1, 1, 1, 1, 1, 1, 1]
        first = surveys.create_survey(
            session,
            jane.id,
            low,
            date_collected=date(2025, 3, 10),
            mode="self",
            channel="at-ussd",
            officer_id=None,
            now=utcnow(),
        )
        latest = surveys.create_survey(
            session,
            jane.id,
            high,
            date_collected=date(2026, 9, 1),
            mode="self",
            channel="at-ussd",
            officer_id=None,
            now=utcnow(),
        )
        bands = (first.band, latest.band)
    _activate(Phone(client), activation_code)
    phone = Phone(client)
    phone.dial()
    phone.send("4")
    progress = phone.send(PIN)
    assert bands[1] in progress and "%" not in progress
    if bands[0] != bands[1]:
        assert "→" in progress or "->" in progress

    with services.transaction() as session:  # the MFI stops showing clients their band
        configure_ppi(
            session, bands="0-24:Very poor,25-44:Poor,45-69:At risk,70-100:Non-poor", show_band_to_client=False
        )
    phone = Phone(client)
    phone.dial()
    phone.send("4")
    hidden = phone.send(PIN)
    assert "Survey taken on" in hidden and not any(band in hidden for band in bands), hidden


def test_an_officers_unlock_lets_the_right_pin_in_even_after_many_wrong_ones_from_the_phone(services, activation_code):
    from accounts.limiter import build_limiter

    with services.transaction() as session:
        client_id = session.scalars(select(Client)).one().id
        accounts.set_pin(session, client_id, PIN, phone=PHONE, now=utcnow())
    limiter, now = build_limiter(services), utcnow()
    for attempt in range(10):  # three lock-outs, each lifted by an officer, then one more wrong try
        with services.transaction() as session:
            accounts.verify_pin(session, limiter, client_id, "1111", phone=PHONE, now=now, settings=services.settings)
            if attempt % 3 == 2:
                accounts.unlock(session, session.get(Client, client_id), actor="staff:S001", now=now, limiter=limiter)
    with services.transaction() as session:
        accounts.unlock(session, session.get(Client, client_id), actor="staff:S001", now=now, limiter=limiter)
    with services.transaction() as session:
        check = accounts.verify_pin(session, limiter, client_id, PIN, phone=PHONE, now=now, settings=services.settings)
    assert check.ok and not check.locked_minutes


def test_a_pin_locked_for_a_while_says_when_to_try_again_on_the_next_dial_not_to_visit_the_branch(
    client, services, activation_code
):
    with services.transaction() as session:
        accounts.set_pin(session, session.scalars(select(Client)).one().id, PIN, phone=PHONE, now=utcnow())
    phone = Phone(client)
    phone.dial()
    phone.send("2")
    screens = [phone.send(wrong) for wrong in ("1111", "2222", "3333")]
    assert screens[-1].startswith("END Too many wrong PINs. Try again in 30 minutes.")
    again = Phone(client)
    again.dial()
    locked = again.send("2")
    assert locked.startswith("END Too many wrong PINs. Try again in 30 minutes."), locked
    assert "branch" not in locked
