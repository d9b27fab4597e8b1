"""Channel budgets and paging: every page fits, every item keeps its number and can be reached."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.screens import Budget, NavLabels, ScreenSpec, paginate
from gateway.messages import Choice


def test_ussd_budget_is_182_gsm_characters_or_80_when_ucs2_is_needed() -> None:
    ussd = Budget("ussd")
    assert ussd.fits("a" * 182) and not ussd.fits("a" * 183)
    assert ussd.fits("ç" * 80) and not ussd.fits("ç" * 81)


def test_sms_budget_is_two_segments_by_default_and_configurable() -> None:
    assert Budget("sms").fits("a" * 306) and not Budget("sms").fits("a" * 307)
    assert Budget("sms").fits("ç" * 134) and not Budget("sms").fits("ç" * 135)
    assert Budget("sms", sms_max_segments=1).fits("a" * 160) and not Budget("sms", sms_max_segments=1).fits("a" * 161)


def test_telegram_budget_is_4096_characters() -> None:
    assert Budget("telegram").fits("a" * 4096) and not Budget("telegram").fits("a" * 4097)


def test_short_menu_is_one_page_without_more() -> None:
    spec = ScreenSpec("Main menu", (Choice("1", "Survey"), Choice("2", "Balances")), home=True)
    pages = paginate(spec, Budget("ussd"))
    assert len(pages) == 1
    assert pages[0].text == "Main menu\n1 Survey\n2 Balances\n00 Menu"
    assert [choice.key for choice in pages[0].choices] == ["1", "2", "00"]


def test_long_list_pages_have_more_and_back_with_translated_labels() -> None:
    items = tuple(Choice(str(n), f"Option number {n}") for n in range(1, 31))
    pages = paginate(
        ScreenSpec("Pick", items, back=True, home=True), Budget("ussd"), NavLabels("Zaidi", "Rudi", "Menyu")
    )
    assert len(pages) > 1
    assert all("98 Zaidi" in page.text for page in pages[:-1]) and "98 Zaidi" not in pages[-1].text
    assert all("0 Rudi" in page.text and "00 Menyu" in page.text for page in pages)


def test_first_page_has_no_back_when_the_screen_has_nowhere_to_go_back_to() -> None:
    items = tuple(Choice(str(n), f"Option number {n}") for n in range(1, 31))
    pages = paginate(ScreenSpec("Pick", items), Budget("ussd"))
    assert "0 Back" not in pages[0].text and "0 Back" in pages[1].text


def test_one_non_gsm_character_shrinks_the_ussd_page() -> None:
    items = tuple(Choice(str(n), f"Option {n}") for n in range(1, 20))
    gsm = paginate(ScreenSpec("Choose", items), Budget("ussd"))
    ucs2 = paginate(ScreenSpec("Choisissez votre réponse ç", items), Budget("ussd"))
    assert len(ucs2) > len(gsm)


HINDI_NAV = NavLabels("आगे", "पीछे", "मेनू")


def test_navigation_words_outside_gsm7_give_way_to_english_on_a_gsm7_screen() -> None:
    items = tuple(Choice(str(n), f"County {n}") for n in range(1, 48))
    pages = paginate(
        ScreenSpec("In which county does the household reside?", items, home=True), Budget("ussd"), HINDI_NAV
    )
    assert "98 More" in pages[0].text and "आगे" not in pages[0].text
    assert len(pages[0].text) > 80  # the 182-character budget, not UCS-2's 80
    hindi = paginate(ScreenSpec("परिवार किस जिले में रहता है?", items, home=True), Budget("ussd"), HINDI_NAV)
    assert "98 आगे" in hindi[0].text  # a Hindi screen keeps its own words
    assert "98 Zaidi" in paginate(ScreenSpec("Pick", items), Budget("ussd"), NavLabels("Zaidi", "Rudi"))[0].text


def test_a_notice_above_a_long_title_leaves_the_start_of_the_title_on_the_page() -> None:
    title = "कृपया 1 से 18 तक कोई संख्या भेजें।\n2/10 What is the predominant wall material of the main dwelling unit?"
    items = tuple(Choice(str(n), f"Wall {n}") for n in range(1, 19))
    first = paginate(ScreenSpec(title, items, back=True, home=True), Budget("ussd"), HINDI_NAV)[0].text
    assert first.startswith("कृपया") and "2/10 What is" in first


def test_final_screen_has_no_navigation() -> None:
    pages = paginate(ScreenSpec("Thank you!", home=True, final=True), Budget("ussd"))
    assert pages[0].text == "Thank you!" and pages[0].choices == ()


labels = st.text(min_size=0, max_size=300)
channels = st.sampled_from(["ussd", "sms", "telegram"])


@settings(max_examples=150, deadline=None)
@given(title=labels, options=st.lists(labels, min_size=0, max_size=60), channel=channels, segments=st.integers(1, 4))
def test_every_page_fits_and_every_option_is_reachable(
    title: str, options: list[str], channel: str, segments: int
) -> None:
    budget = Budget(channel, segments)
    items = tuple(Choice(str(n), label) for n, label in enumerate(options, start=1))
    pages = paginate(ScreenSpec(title, items, back=True, home=True), budget)
    assert pages
    for page in pages:
        assert budget.fits(page.text), page.text
    shown = [choice.key for page in pages for choice in page.choices if choice.key not in ("98", "0", "00")]
    assert shown == [item.key for item in items]
    assert all("98 More" in page.text for page in pages[:-1])
