"""PIN-protected services, first-time activation and changing the PIN."""

from __future__ import annotations

import json

from conversation_kit import JANE, Session, client_context, effect_kinds, identity

from conversations.dialogue import EffectResult, UserInput
from conversations.effects import (
    ActivateAccount,
    ChangePin,
    CheckPinStatus,
    FetchBalances,
    FetchProgress,
    FetchStatement,
    SetPin,
    StagePin,
    VerifyPin,
)
from conversations.engine import advance


def _at_menu(pin: str = "active", locked_minutes: int = 0, **changes: object) -> Session:
    session = Session(client_context(**changes), pin=pin, locked_minutes=locked_minutes)
    session.start()
    return session


def test_balances_ask_for_the_pin_then_fetch() -> None:
    session = _at_menu()
    session.type("2")
    assert "Enter your PIN" in session.screen
    step = session.type("4826")
    assert step.effects == (VerifyPin(JANE.id, "4826"),) and step.replies == ()
    step = session.result("pin_ok")
    assert step.effects == (FetchBalances(JANE.id),)
    step = session.result("lines", lines=["Savings: KES 1,200 (as of 20 Nov)", "Loan due: KES 500"])
    assert "Balances" in step.replies[0].text and "Savings: KES 1,200 (as of 20 Nov)" in step.replies[0].text
    assert "Loan due: KES 500" in step.replies[0].text


def test_an_arabic_keyboards_digits_choose_from_the_menu_and_type_the_pin() -> None:
    session = _at_menu(channel="sms")
    session.type("\u0662")  # "٢": balances
    assert "Enter your PIN" in session.screen
    step = session.type("\u0664\u0668\u0662\u0666")  # "٤٨٢٦"
    assert step.effects == (VerifyPin(JANE.id, "4826"),)


def test_pin_is_asked_only_once_per_session() -> None:
    session = _at_menu()
    session.type("3", "4826")
    session.result("pin_ok")
    session.result("lines", lines=["1 May deposit 200"])
    session.type("00")
    step = session.type("4")
    assert step.effects == (FetchProgress(JANE.id),)


def test_statement_uses_its_own_fetch() -> None:
    session = _at_menu()
    session.type("3", "4826")
    assert session.result("pin_ok").effects == (FetchStatement(JANE.id),)


def test_malformed_pin_is_refused_without_checking_it() -> None:
    session = _at_menu()
    session.type("2")
    step = session.type("12ab")
    assert not step.effects and "A PIN has 4 digits." in step.replies[0].text
    step = session.type("72946")  # five digits: no PIN is that long, so no attempt is spent on it
    assert not step.effects and "A PIN has 4 digits." in step.replies[0].text


def test_a_pin_reset_since_the_session_began_leads_to_activation_not_to_wrong_pin() -> None:
    session = _at_menu()
    session.type("2", "4826")
    step = session.result("pin_needs_activation")
    assert "Enter the activation code" in step.replies[0].text and "Wrong PIN" not in step.replies[0].text


def _new_pin_staged(pin: str) -> Session:
    """A client activates their account and chooses `pin`; the shell has staged it, waiting for the confirmation."""
    session = _at_menu(pin="not_set")
    session.type("2", "AB12CD")
    session.result("activation_ok")
    session.type(pin)
    session.result("pin_staged")
    return session


def test_a_new_pin_confirmed_after_its_stage_expired_is_asked_again_not_called_a_mismatch() -> None:
    session = _new_pin_staged("5839")
    session.type("5839")
    step = session.result("pin_stage_expired")
    assert "That took too long" in step.replies[0].text and "did not match" not in step.replies[0].text
    assert "Choose a new PIN (4 digits):" in step.replies[0].text


def test_wrong_pin_says_how_many_tries_are_left() -> None:
    session = _at_menu()
    session.type("2", "1111")
    step = session.result("pin_wrong", attempts_left=2)
    assert "Wrong PIN. 2 tries left." in step.replies[0].text and "Enter your PIN" in step.replies[0].text
    session.type("2222")
    assert "Wrong PIN. 1 try left." in session.result("pin_wrong", attempts_left=1).replies[0].text


def test_locked_pin_ends_the_session_with_the_wait() -> None:
    session = _at_menu()
    session.type("2", "1111")
    step = session.result("pin_locked", minutes=15)
    assert step.finished and "Try again in 15 minutes." in step.replies[0].text


def test_already_locked_pin_is_not_asked_for_and_the_wait_is_given() -> None:
    session = _at_menu(pin="locked", locked_minutes=12)
    step = session.type("2")
    assert step.finished and not step.effects
    assert step.replies[0].text == "Too many wrong PINs. Try again in 12 minutes."


def test_the_pin_status_is_asked_of_the_shell_only_when_a_service_needs_the_pin() -> None:
    session = _at_menu()
    assert not any(effect_kinds(step) for step in session.steps)  # the menu needed no PIN status
    session.type("2")
    asked, answered = session.steps[-2:]
    assert asked.effects == (CheckPinStatus(JANE.id),) and asked.replies == () and not asked.finished
    assert "Enter your PIN" in answered.replies[0].text
    session.type("4826")
    session.result("pin_ok")
    session.result("lines", lines=["Savings: KES 1,200"])
    verified = len(session.steps)
    session.type("00", "3")  # verified this session: no second check
    assert session.steps[-1].effects == (FetchStatement(JANE.id),)
    assert "check_pin_status" not in [kind for step in session.steps[verified:] for kind in effect_kinds(step)]


def test_a_pin_status_the_shell_could_not_read_returns_to_the_menu_with_a_reason() -> None:
    context = client_context()
    menu = _at_menu().state
    asked = advance(menu, UserInput("2"), context, identity)
    assert asked.state.node == "await_pin_status"
    step = advance(asked.state, EffectResult("service_unavailable"), context, identity)
    assert "not available right now" in step.replies[0].text and "1 PPI survey" in step.replies[0].text
    assert not step.finished and step.state.after_pin is None


def test_unavailable_core_banking_returns_to_menu_with_a_reason() -> None:
    session = _at_menu()
    session.type("2", "4826")
    session.result("pin_ok")
    step = session.result("service_unavailable")
    assert "not available right now" in step.replies[0].text and "1 PPI survey" in step.replies[0].text


def test_pin_not_set_offers_activation_then_new_pin_twice() -> None:
    session = _at_menu(pin="not_set")
    session.type("2")
    assert "activation code" in session.screen
    assert session.type("AB12CD").effects == (ActivateAccount(JANE.id, "AB12CD"),)
    session.result("activation_ok")
    assert "Choose a new PIN" in session.screen
    assert session.type("5931").effects == (StagePin(JANE.id, "5931"),)
    session.result("pin_staged")
    assert "Enter the new PIN again" in session.screen
    assert session.type("5931").effects == (SetPin(JANE.id, "5931"),)
    step = session.result("pin_set")
    assert step.effects == (FetchBalances(JANE.id),)


def test_bad_activation_code_asks_again() -> None:
    session = _at_menu(pin="not_set")
    session.type("2", "ZZZZ")
    step = session.result("activation_bad")
    assert "That code is not valid." in step.replies[0].text


def test_confirmation_that_does_not_match_starts_the_new_pin_again() -> None:
    session = _new_pin_staged("5931")
    session.type("5932")
    step = session.result("pin_mismatch")
    assert "did not match" in step.replies[0].text and "Choose a new PIN" in step.replies[0].text


def test_weak_pin_rejected_by_the_shell_shows_its_reason() -> None:
    session = _at_menu(pin="not_set")
    session.type("2", "AB12CD")
    session.result("activation_ok")
    session.type("1234")
    step = session.result("pin_rejected", reason_msgid="This PIN is too easy to guess.")
    assert "too easy to guess" in step.replies[0].text


def test_change_pin_verifies_the_old_pin_then_asks_twice() -> None:
    session = _at_menu()
    session.type("7", "4826")
    session.result("pin_ok")
    assert "Choose a new PIN" in session.screen
    session.type("7391")
    session.result("pin_staged")
    assert session.type("7391").effects == (ChangePin(JANE.id, "7391"),)
    step = session.result("pin_set")
    assert "Your PIN has been changed." in step.replies[0].text and "1 PPI survey" in step.replies[0].text


def test_no_pin_ever_reaches_state_or_replies() -> None:
    session = _at_menu(pin="not_set")
    session.type("7", "AB12CD")
    session.result("activation_ok")
    session.type("5839")
    session.result("pin_staged")
    session.type("5839")
    session.result("pin_set")
    session.type("2")
    session.type("00", "7")
    assert "Choose a new PIN" in session.screen
    for step in session.steps:
        stored = json.dumps(step.state.to_json())
        assert "5839" not in stored and "AB12CD" not in stored
        assert all("5839" not in reply.text for reply in step.replies)
    assert "set_pin" in [kind for step in session.steps for kind in effect_kinds(step)]
