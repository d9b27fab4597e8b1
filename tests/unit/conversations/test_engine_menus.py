"""Session start, the main menu, navigation keys and invalid input."""

from __future__ import annotations

from conversation_kit import JANE, OTIENO, Session, client_context, dict_translator, officer_context

from conversations.dialogue import EffectResult, State, UserInput
from conversations.engine import advance


def test_known_client_start_shows_main_menu_with_seven_services() -> None:
    session = Session(client_context())
    step = session.start()
    for line in ("1 PPI survey", "2 Balances", "3 Mini-statement", "4 My progress", "5 Data sharing", "6 Language"):
        assert line in step.replies[0].text
    assert "7 Change PIN" in step.replies[0].text
    assert not step.finished and not step.replies[0].final
    assert session.state is not None and session.state.client_id == JANE.id


def test_menu_choices_become_buttons_for_telegram() -> None:
    step = Session(client_context(channel="telegram")).start()
    keys = [choice.key for choice in step.replies[0].choices]
    assert keys[:7] == ["1", "2", "3", "4", "5", "6", "7"]


def test_shared_phone_asks_who_is_speaking_before_the_menu() -> None:
    session = Session(client_context(clients=(JANE, OTIENO)))
    first = session.start()
    assert "Who is speaking?" in first.replies[0].text
    assert "1 Jane" in first.replies[0].text and "2 Otieno" in first.replies[0].text
    session.type("2")
    assert "1 PPI survey" in session.screen
    assert session.state is not None and session.state.client_id == OTIENO.id


def test_shared_phone_back_from_menu_lets_another_person_choose() -> None:
    session = Session(client_context(clients=(JANE, OTIENO)))
    session.start()
    session.type("1", "0")
    assert "Who is speaking?" in session.screen


def test_unknown_phone_gets_polite_final_message() -> None:
    step = Session(client_context(role="unknown", clients=())).start()
    assert step.finished and step.replies[0].final
    assert "not registered" in step.replies[0].text


def test_officer_phone_starts_at_officer_menu() -> None:
    step = Session(officer_context()).start()
    assert "1 Survey for a client" in step.replies[0].text
    assert "Balances" not in step.replies[0].text


def test_switched_off_service_is_hidden_and_other_numbers_stay() -> None:
    session = Session(client_context(features={"balances": False}))
    session.start()
    assert "Balances" not in session.screen
    assert "3 Mini-statement" in session.screen
    session.type("2")
    assert "Please choose from the menu." in session.screen


def test_menu_is_translated_with_the_given_translator() -> None:
    swahili = dict_translator({"Main menu": "Menyu kuu", "Balances": "Salio", "PPI survey": "Utafiti wa PPI"})
    step = Session(client_context(), translate=swahili).start()
    assert "Menyu kuu" in step.replies[0].text
    assert "2 Salio" in step.replies[0].text


def test_broken_translator_falls_back_to_english_instead_of_failing() -> None:
    def broken(msgid: str, **params: object) -> str:
        raise KeyError("bad catalog entry")

    step = Session(client_context(), translate=broken).start()
    assert "2 Balances" in step.replies[0].text


def test_invalid_menu_choice_repeats_menu_with_reason() -> None:
    session = Session(client_context())
    session.start()
    step = session.type("9")
    assert step.replies[0].text.startswith("Please choose from the menu.")
    assert "1 PPI survey" in step.replies[0].text
    assert session.state is not None and session.state.node == "menu"


def test_three_invalid_replies_in_a_row_end_the_session_politely() -> None:
    session = Session(client_context())
    session.start()
    session.type("x", "")
    step = session.type("🙂")
    assert step.finished and step.replies[0].final
    assert "Too many invalid replies" in step.replies[0].text


def test_a_valid_reply_resets_the_invalid_count() -> None:
    session = Session(client_context())
    session.start()
    session.type("x", "y", "6", "0", "z", "w")
    assert not session.steps[-1].finished


def test_double_zero_returns_to_main_menu_from_a_pin_prompt() -> None:
    session = Session(client_context())
    session.start()
    session.type("2")
    assert "Enter your PIN" in session.screen
    session.type("00")
    assert "1 PPI survey" in session.screen


def test_more_on_the_last_page_is_invalid() -> None:
    session = Session(client_context())
    session.start()
    step = session.type("98")
    assert "nothing more" in step.replies[0].text


def test_input_after_session_end_starts_again() -> None:
    session = Session(client_context())
    session.start()
    session.type("x", "x", "x")
    session.type("hello")
    assert "1 PPI survey" in session.screen


def test_result_of_fire_and_forget_effect_shows_same_screen_again() -> None:
    session = Session(client_context())
    session.start()
    session.type("1")
    before = session.screen
    step = session.result("answer_saved")
    assert step.replies[0].text == before and not step.effects


def test_typing_while_waiting_for_an_effect_returns_to_the_prompt() -> None:
    session = Session(client_context())
    session.start()
    session.type("2", "4826")
    assert session.state is not None and session.state.node == "await_pin"
    step = session.type("1")
    assert "Enter your PIN" in step.replies[0].text and not step.effects


def test_stored_state_from_another_version_starts_a_new_session() -> None:
    state = State.from_json({"version": 999, "node": "question"})
    step = advance(state, UserInput("1"), client_context(), dict_translator({}))
    assert "1 PPI survey" in step.replies[0].text


def test_unexpected_result_kind_does_not_crash() -> None:
    session = Session(client_context())
    session.start()
    session.type("2", "4826")
    step = session.send(EffectResult("something_else", {"weird": object()}))
    assert "not available" in step.replies[0].text


def test_double_zero_while_waiting_for_an_effect_goes_home() -> None:
    session = Session(client_context())
    session.start()
    session.type("2", "4826")
    step = session.type("00")
    assert "1 PPI survey" in step.replies[0].text
