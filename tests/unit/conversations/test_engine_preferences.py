"""Data-sharing consent and the language setting."""

from __future__ import annotations

from conversation_kit import JANE, Session, client_context, dict_translator

from conversations.effects import FetchConsentText, RecordConsent, SetLanguage

CONSENT = {
    "text": "We would like to share your survey results with our partner to improve services.",
    "what_is_shared": "Your PPI score and band. Never your name or phone.",
    "version": "v3",
}


def _consent_screen(current: bool | None = None) -> Session:
    session = Session(client_context())
    session.start()
    step = session.type("5")
    assert step.effects == (FetchConsentText(JANE.id),) and step.replies == ()
    session.result("consent_text", current=current, **CONSENT)
    return session


def test_consent_shows_text_and_three_choices() -> None:
    session = _consent_screen()
    assert "share your survey results" in session.screen
    assert "1 Yes" in session.screen and "2 No" in session.screen and "3 What is shared" in session.screen


def test_consent_yes_is_recorded_with_the_version_shown() -> None:
    session = _consent_screen()
    step = session.type("1")
    assert step.effects == (RecordConsent(JANE.id, True, "v3"),)
    assert "You agreed to share your data." in step.replies[0].text


def test_revoking_says_the_current_choice_and_records_no() -> None:
    session = _consent_screen(current=True)
    assert "Now: you share your data." in session.screen
    step = session.type("2")
    assert step.effects == (RecordConsent(JANE.id, False, "v3"),)
    assert "will not be shared" in step.replies[0].text


def test_what_is_shared_then_back_to_the_choice() -> None:
    session = _consent_screen()
    session.type("3")
    assert "Your PPI score and band" in session.screen
    session.type("0")
    assert "3 What is shared" in session.screen


def test_consent_text_unavailable_returns_to_menu() -> None:
    session = Session(client_context())
    session.start()
    session.type("5")
    step = session.result("service_unavailable")
    assert "not available" in step.replies[0].text and "1 PPI survey" in step.replies[0].text


def test_language_list_and_change() -> None:
    session = Session(client_context())
    session.start()
    session.type("6")
    assert "1 English" in session.screen and "2 Kiswahili" in session.screen
    step = session.type("2")
    assert step.effects == (SetLanguage(JANE.id, "sw"),) and step.replies == ()  # confirmed once it is stored
    step = session.result("language_set")
    assert "Language changed: Kiswahili" in step.replies[0].text


def test_language_confirmation_is_shown_again_in_the_new_language() -> None:
    session = Session(client_context())
    session.start()
    session.type("6", "2")
    session.translate = dict_translator({"Language changed: %(language)s": "Lugha imebadilishwa: %(language)s"})
    step = session.result("language_set")
    assert "Lugha imebadilishwa: Kiswahili" in step.replies[0].text
