"""Self-service screens as text: balances, the last transactions and poverty progress, in the client's language.

Pure functions (no database, no clock): the shell passes the data, a `translate` function and a Babel locale such
as "sw_KE". Amounts, dates and months are formatted by Babel for that locale. Babel's no-break spaces and direction
marks are normalised where the meaning allows (they force UCS-2, halving what an SMS carries), a currency symbol
outside GSM-7 (₹) falls back to its ISO code, masked numbers show "**1234" and the direction arrow is "->" for the
same reason. Raw likelihoods are never shown to a client: only dates and the MFI's band labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton
from babel.numbers import format_currency

from accounts.corebanking import AccountBalance, StatementLine
from gateway.encoding import is_gsm7, normalise_for_sms
from locales import N_, Translate


class SurveyLike(Protocol):
    """What progress needs from a survey (a `SurveyResponse` fits)."""

    @property
    def date_collected(self) -> date: ...

    @property
    def band(self) -> str | None: ...


TRANSACTION_KINDS = {
    "disbursement": N_("Loan paid out"),
    "repayment": N_("Repayment"),
    "deposit": N_("Deposit"),
    "withdrawal": N_("Withdrawal"),
    "fee": N_("Fee"),
    "penalty": N_("Penalty"),
    "interest": N_("Interest"),
    "waiver": N_("Waiver"),
    "write_off": N_("Written off"),
}
OTHER_KIND = N_("Other")


def babel_locale(language: str | None, region: str | None, default: str = "en") -> str:
    """'sw' + 'KE' -> 'sw_KE' when Babel knows it, else the bare language; unknown languages use `default`."""
    base = (language or default).replace("-", "_").split("_")[0].lower()
    suffix = f"_{region.upper()}" if region else ""
    for candidate in (base + suffix, base, default + suffix, default):
        if _babel_knows(candidate):
            return candidate
    return "en"


def _babel_knows(identifier: str) -> bool:
    try:
        Locale.parse(identifier)
    except (UnknownLocaleError, ValueError):
        return False
    return True


# --- balances -----------------------------------------------------------------------------------------------------


def balance_lines(
    balances: Sequence[AccountBalance], translate: Translate, locale: str, currency: str, *, timezone: str = "UTC"
) -> list[str]:
    """One line per account: number, product, balance, next due date and amount, arrears; stale ones labelled with
    the day (in the MFI's `timezone`) of the last-known copy."""
    if not balances:
        return [translate("You have no open accounts.")]
    zone = ZoneInfo(timezone)
    return [_clean(_balance_line(balance, translate, locale, currency, zone)) for balance in balances]


def _balance_line(balance: AccountBalance, translate: Translate, locale: str, currency: str, zone: ZoneInfo) -> str:
    money = balance.currency or currency
    number, product = _gsm_mask(balance.masked_number), balance.product_name
    if balance.kind == "loan" and balance.balance < 0:  # paid more than owed: the MFI owes the client
        credit = _amount(-balance.balance, money, locale)
        parts = [
            translate("%(product)s %(number)s: in credit %(amount)s", amount=credit, number=number, product=product)
        ]
    elif balance.kind == "loan":
        owed = _amount(balance.balance, money, locale)
        parts = [translate("%(product)s %(number)s: you owe %(amount)s", amount=owed, number=number, product=product)]
        if balance.next_due_date is not None and balance.next_due_amount is not None:
            due, when = _amount(balance.next_due_amount, money, locale), _day(balance.next_due_date, locale)
            parts.append(translate("next payment %(amount)s on %(date)s", amount=due, date=when))
        if balance.arrears > 0:
            parts.append(translate("overdue %(amount)s", amount=_amount(balance.arrears, money, locale)))
    else:
        saved = _amount(balance.balance, money, locale)
        parts = [translate("%(product)s %(number)s: %(amount)s", amount=saved, number=number, product=product)]
    line = "; ".join(parts)
    if balance.stale:
        line += " " + translate("(as of %(date)s)", date=_day(balance.as_of.astimezone(zone).date(), locale))
    return line


# --- statement ----------------------------------------------------------------------------------------------------


def statement_lines(
    lines: Sequence[StatementLine], translate: Translate, locale: str, currency: str, limit: int = 5
) -> list[str]:
    """The last `limit` transactions, newest first: date, what, amount, account."""
    if not lines:
        return [translate("No transactions yet.")]
    newest = sorted(lines, key=lambda line: line.date, reverse=True)[:limit]
    return [_clean(_statement_line(line, translate, locale, currency)) for line in newest]


def _statement_line(line: StatementLine, translate: Translate, locale: str, currency: str) -> str:
    return translate(
        "%(date)s %(kind)s %(amount)s %(account)s",
        date=_day(line.date, locale),
        kind=translate(TRANSACTION_KINDS.get(line.kind, OTHER_KIND)),
        amount=_amount(line.amount, line.currency or currency, locale),
        account=_gsm_mask(line.account),
    )


# --- poverty progress ---------------------------------------------------------------------------------------------


def progress_lines(
    surveys: Sequence[SurveyLike], translate: Translate, locale: str, *, show_band: bool = True, limit: int = 5
) -> list[str]:
    """The direction over time ("Poor -> At risk since Mar 2025"), then the latest surveys, newest first."""
    if not surveys:
        return [translate("You have not taken a poverty survey yet. Your loan officer can help you take one.")]
    ordered = sorted(surveys, key=lambda survey: survey.date_collected)
    lines = [_direction(ordered, translate, locale)] if show_band and ordered[-1].band else []
    for survey in reversed(ordered[-limit:]):
        when = _day_with_year(survey.date_collected, locale)
        if show_band and survey.band:
            lines.append(translate("%(date)s: %(band)s", date=when, band=survey.band))
        else:
            lines.append(translate("Survey taken on %(date)s", date=when))
    return [_clean(line) for line in lines]


def _direction(ordered: Sequence[SurveyLike], translate: Translate, locale: str) -> str:
    """The latest band, since when it has held, and the band before it if it changed."""
    current = ordered[-1].band
    start = len(ordered) - 1
    while start > 0 and ordered[start - 1].band == current:
        start -= 1
    month = _month(ordered[start].date_collected, locale)
    previous = ordered[start - 1].band if start > 0 else None
    if previous:
        return translate("%(before)s -> %(now)s since %(month)s", before=previous, now=current, month=month)
    return translate("%(now)s since %(month)s", now=current, month=month)


# --- formatting ---------------------------------------------------------------------------------------------------


def _amount(value: Decimal, currency: str, locale: str) -> str:
    """Babel's currency format for `locale`; the ISO code instead of a symbol that SMS cannot carry in GSM-7."""
    formatted = format_currency(value, currency, locale=locale)
    if is_gsm7(normalise_for_sms(formatted)):
        return formatted  # spaces and direction marks are settled for the whole line by `_clean`
    return format_currency(value, currency, format="¤¤ #,##0.00", locale=locale)


def _day(value: date, locale: str) -> str:
    return format_skeleton("dMMM", value, locale=locale)


def _day_with_year(value: date, locale: str) -> str:
    return format_skeleton("yMMMd", value, locale=locale)


def _month(value: date, locale: str) -> str:
    return format_skeleton("yMMM", value, locale=locale)


def _gsm_mask(masked_number: str) -> str:
    """'••1234' -> '**1234': the bullet is outside GSM-7 and would halve what a USSD screen or SMS carries."""
    return masked_number.replace("•", "*")


def _clean(line: str) -> str:
    return normalise_for_sms(line)
