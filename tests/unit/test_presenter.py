"""What a client reads on the balance, statement and progress screens, in their language, within GSM-7 when possible."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from accounts.corebanking import AccountBalance, StatementLine
from accounts.presenter import babel_locale, balance_lines, progress_lines, statement_lines
from gateway.encoding import is_gsm7
from locales import gettext_for

english = gettext_for("en")

LOAN = AccountBalance(
    kind="loan",
    masked_number="••0007",
    product_name="Group Loan 12w",
    currency="KES",
    balance=Decimal("8450.00"),
    next_due_date=date(2025, 4, 14),
    next_due_amount=Decimal("1800.00"),
    arrears=Decimal("0"),
    as_of=datetime(2025, 3, 12, 9, 0, tzinfo=UTC),
)
SAVINGS = replace(
    LOAN, kind="savings", masked_number="••0009", product_name="Voluntary Savings", balance=Decimal("1828.03")
)
SAVINGS = replace(SAVINGS, next_due_date=None, next_due_amount=None)


@dataclass(frozen=True)
class Survey:
    date_collected: date
    band: str | None
    headline_likelihood: float = 0.4213


def test_loan_line_shows_account_product_outstanding_and_next_payment() -> None:
    (line,) = balance_lines([LOAN], english, "en_KE", "KES")

    assert line == "Group Loan 12w **0007: you owe Ksh8,450.00; next payment Ksh1,800.00 on 14 Apr"


def test_arrears_are_mentioned_only_when_there_are_some() -> None:
    (line,) = balance_lines([replace(LOAN, arrears=Decimal("500"))], english, "en_KE", "KES")

    assert line.endswith("; overdue Ksh500.00")


def test_savings_line_shows_the_balance() -> None:
    assert balance_lines([SAVINGS], english, "en_KE", "KES") == ["Voluntary Savings **0009: Ksh1,828.03"]


def test_stale_balance_says_when_it_was_true() -> None:
    (line,) = balance_lines([replace(SAVINGS, stale=True)], english, "en_KE", "KES")

    assert line.endswith("(as of 12 Mar)")


def test_a_stale_balance_is_dated_by_the_mfis_calendar_not_utcs() -> None:
    late_evening_utc = replace(SAVINGS, stale=True, as_of=datetime(2025, 3, 12, 22, 30, tzinfo=UTC))
    (nairobi,) = balance_lines([late_evening_utc], english, "en_KE", "KES", timezone="Africa/Nairobi")
    assert nairobi.endswith("(as of 13 Mar)")  # 01:30 on the 13th in Nairobi
    (utc,) = balance_lines([late_evening_utc], english, "en_KE", "KES")
    assert utc.endswith("(as of 12 Mar)")


def test_no_accounts_gives_a_friendly_line() -> None:
    assert balance_lines([], english, "en_KE", "KES") == ["You have no open accounts."]


def test_swahili_amounts_use_plain_spaces_and_stay_gsm7() -> None:
    lines = balance_lines([LOAN, SAVINGS], gettext_for("sw"), "sw_KE", "KES")

    assert "Ksh 8,450.00" in lines[0]
    assert all(is_gsm7(line) for line in lines)


def test_french_grouping_uses_plain_spaces() -> None:
    (line,) = balance_lines([SAVINGS], gettext_for("fr"), "fr", "KES")

    assert "1 828,03" in line
    assert "\u202f" not in line and "\xa0" not in line


def test_currency_without_decimals_is_not_shown_with_cents() -> None:
    (line,) = balance_lines([replace(SAVINGS, currency="UGX", balance=Decimal("150000"))], english, "en_UG", "UGX")

    assert line.endswith("USh150,000")


def test_symbol_outside_gsm7_falls_back_to_the_iso_code() -> None:
    (line,) = balance_lines([replace(SAVINGS, currency="INR")], english, "en_IN", "INR")

    assert "INR" in line and "₹" not in line
    assert is_gsm7(line)


def test_the_mfi_currency_is_used_when_the_account_has_none() -> None:
    (line,) = balance_lines([replace(SAVINGS, currency="")], english, "en_KE", "KES")

    assert "Ksh1,828.03" in line


@given(st.decimals(min_value=0, max_value=10**9, places=2), st.sampled_from(["en_KE", "sw_KE", "fr", "es", "en_UG"]))
def test_latin_script_balances_always_fit_gsm7(amount: Decimal, locale: str) -> None:
    balance = replace(LOAN, balance=amount, arrears=amount, next_due_amount=amount)

    assert all(is_gsm7(line) for line in balance_lines([balance], english, locale, "KES"))


def test_statement_is_newest_first_and_at_most_five() -> None:
    lines = [StatementLine(date(2025, 3, day), "repayment", Decimal("1800"), "KES", "••0007") for day in range(1, 8)]

    shown = statement_lines(lines, english, "en_KE", "KES")

    assert len(shown) == 5
    assert shown[0] == "7 Mar Repayment Ksh1,800.00 **0007"
    assert shown[-1].startswith("3 Mar")


def test_statement_names_each_kind_and_tolerates_unknown_ones() -> None:
    lines = [
        StatementLine(date(2025, 4, 2), "deposit", Decimal("500"), "KES", "••0009"),
        StatementLine(date(2025, 4, 1), "chargeback", Decimal("5"), "KES", "••0009"),
    ]

    assert statement_lines(lines, english, "en_KE", "KES") == [
        "2 Apr Deposit Ksh500.00 **0009",
        "1 Apr Other Ksh5.00 **0009",
    ]


def test_a_loan_paid_beyond_what_was_owed_is_in_credit_and_a_penalty_is_named() -> None:
    (line,) = balance_lines([replace(LOAN, balance=Decimal("-250.00"))], english, "en_KE", "KES")
    assert line == "Group Loan 12w **0007: in credit Ksh250.00"  # not "you owe -Ksh250.00"
    (swahili,) = balance_lines([replace(LOAN, balance=Decimal("-250.00"))], gettext_for("sw"), "sw_KE", "KES")
    assert "-" not in swahili.split(":", 1)[1] and "250" in swahili
    penalty = StatementLine(date(2025, 4, 2), "penalty", Decimal("50"), "KES", "••0007")
    assert statement_lines([penalty], english, "en_KE", "KES") == ["2 Apr Penalty Ksh50.00 **0007"]


def test_empty_statement_says_so() -> None:
    assert statement_lines([], english, "en_KE", "KES") == ["No transactions yet."]


def test_progress_shows_the_change_of_band_and_since_when() -> None:
    surveys = [
        Survey(date(2024, 3, 5), "Poor"),
        Survey(date(2025, 3, 12), "At risk"),
        Survey(date(2025, 9, 1), "At risk"),
    ]

    lines = progress_lines(surveys, english, "en_KE")

    assert lines[0] == "Poor -> At risk since Mar 2025"
    assert lines[1:] == ["1 Sept 2025: At risk", "12 Mar 2025: At risk", "5 Mar 2024: Poor"]


def test_progress_without_a_change_says_since_the_first_survey() -> None:
    lines = progress_lines([Survey(date(2025, 9, 1), "Poor"), Survey(date(2024, 3, 5), "Poor")], english, "en_KE")

    assert lines[0] == "Poor since Mar 2024"


def test_progress_never_shows_likelihoods() -> None:
    lines = progress_lines([Survey(date(2025, 3, 12), "Poor")], english, "en_KE")

    assert not any("42" in line or "%" in line for line in lines)


def test_progress_without_bands_lists_survey_dates() -> None:
    surveys: list[Any] = [Survey(date(2025, 3, 12), None)]

    assert progress_lines(surveys, english, "en_KE") == ["Survey taken on 12 Mar 2025"]
    assert progress_lines([Survey(date(2025, 3, 12), "Poor")], english, "en_KE", show_band=False) == [
        "Survey taken on 12 Mar 2025"
    ]


def test_no_surveys_gives_a_friendly_line() -> None:
    (line,) = progress_lines([], english, "en_KE")

    assert "not taken a poverty survey" in line


def test_babel_locale_combines_language_and_region_when_known() -> None:
    assert babel_locale("sw", "KE") == "sw_KE"
    assert babel_locale("fr", "SN") == "fr_SN"
    assert babel_locale("fr", "KE") == "fr"  # Babel has no fr_KE
    assert babel_locale("xx", "KE") == "en_KE"
    assert babel_locale(None, None) == "en"
