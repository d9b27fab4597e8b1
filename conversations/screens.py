"""Screen budgets and paging: cut a menu or long text into pages that each fit one USSD screen, SMS or message.

A USSD screen carries 182 GSM-7 characters, or 80 when one character needs UCS-2; an SMS reply is held to a few
segments; Telegram allows 4096 characters. The engine describes a screen once (title, numbered items, navigation)
and this module decides where the pages break, so every reply fits and every item keeps its real number.
Pure: no IO, only `gateway.encoding` arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway import encoding
from gateway.messages import Choice

MORE_KEY, BACK_KEY, HOME_KEY = "98", "0", "00"
TELEGRAM_LIMIT = 4096
DEFAULT_SMS_SEGMENTS = 2
MIN_TITLE_PIECE = 12  # a title line is split to fill a page only when at least this much of it fits


@dataclass(frozen=True)
class Budget:
    """How much text one reply may carry on a channel ("ussd", "sms", "telegram"; anything else is held to USSD)."""

    channel: str
    sms_max_segments: int = DEFAULT_SMS_SEGMENTS

    def fits(self, text: str) -> bool:
        """True when `text` fits in one reply on this channel."""
        if self.channel == "telegram":
            return len(text.encode("utf-16-le")) // 2 <= TELEGRAM_LIMIT
        if self.channel == "sms":
            return encoding.segment_count(text) <= max(1, self.sms_max_segments)
        return encoding.fits_ussd(text)


@dataclass(frozen=True)
class NavLabels:
    """Translated words for the navigation lines ("98 More", "0 Back", "00 Menu")."""

    more: str = "More"
    back: str = "Back"
    home: str = "Menu"


@dataclass(frozen=True)
class ScreenSpec:
    """What one screen shows, before paging.

    `title` may be long or span lines (a notice such as an error reason goes on its first line); `items` are numbered
    choices shown as "key label"; `back`/`home` say whether "0 Back" (on the first page) and "00 Menu" are offered.
    """

    title: str
    items: tuple[Choice, ...] = ()
    back: bool = False
    home: bool = False
    final: bool = False


@dataclass(frozen=True)
class Page:
    """One rendered page and the choices it shows (Telegram buttons)."""

    text: str
    choices: tuple[Choice, ...]


@dataclass(frozen=True)
class _Unit:
    """One line to place on a page; `choice` is set on the first line of a numbered item."""

    text: str
    choice: Choice | None = None


def paginate(spec: ScreenSpec, budget: Budget, nav: NavLabels = NavLabels()) -> tuple[Page, ...]:
    """Cut `spec` into pages that each fit `budget`, navigation footer included. Always at least one page.

    Lines are packed greedily with room kept for "98 More"; the rest of the screen goes on one last page (without
    "98 More") as soon as it fits there. A line too long for any page is split, at a space when possible.
    """
    nav = _nav_in_the_screens_alphabet(spec, budget, nav)
    home = spec.home and not spec.final
    with_more = _footer_lines(nav, more=True, back=not spec.final, home=home)
    without_more = _footer_lines(nav, more=False, back=not spec.final, home=home)
    pending = _units(spec)
    groups: list[list[_Unit]] = []
    while pending:
        if _fits_lines([u.text for u in pending], without_more, budget):
            groups.append(pending)
            break
        page, pending = _fill_page(pending, with_more, budget)
        groups.append(page)
    return tuple(_render_page(spec, nav, groups, index) for index in range(len(groups)))


def _nav_in_the_screens_alphabet(spec: ScreenSpec, budget: Budget, nav: NavLabels) -> NavLabels:
    """Navigation words outside GSM-7 (Hindi "आगे" under a question of a scorecard published in English only) would
    shrink a USSD screen from 182 characters to 80, and an SMS segment from 160 to 70, for three words: where the
    rest of the screen is GSM-7 the English words are used instead, and the question keeps its room."""
    if budget.channel == "telegram" or encoding.is_gsm7(nav.more + nav.back + nav.home):
        return nav
    body = "".join([spec.title, *(choice.label for choice in spec.items)])
    return NavLabels() if encoding.is_gsm7(body) else nav


def one_screen(text: str, budget: Budget) -> str:
    """`text` cut to one screen, for a USSD session's last screen (it cannot be paged: the session is over). The
    result is on the last lines (a band, a score), so the first lines go first; a line still too long is cut."""
    lines = [line for line in text.split("\n") if line.strip()] or [""]
    while len(lines) > 1 and not budget.fits("\n".join(lines)):
        lines.pop(0)
    if budget.fits(lines[0]):
        return "\n".join(lines)
    return _split_line(lines[0], budget.fits)[0]


def _units(spec: ScreenSpec) -> list[_Unit]:
    units = [_Unit(line) for line in spec.title.split("\n") if line.strip()] or [_Unit("")]
    units.extend(_Unit(f"{choice.key} {choice.label}", choice) for choice in spec.items)
    return units


def _footer_lines(nav: NavLabels, *, more: bool, back: bool, home: bool) -> list[str]:
    lines = [f"{MORE_KEY} {nav.more}"] if more else []
    lines += [f"{BACK_KEY} {nav.back}"] if back else []
    lines += [f"{HOME_KEY} {nav.home}"] if home else []
    return lines


def _fits_lines(lines: Sequence[str], footer: Sequence[str], budget: Budget) -> bool:
    return budget.fits("\n".join([*lines, *footer]))


def _fill_page(units: list[_Unit], footer: list[str], budget: Budget) -> tuple[list[_Unit], list[_Unit]]:
    """Take as many units as fit on one page; split the first one if even it does not fit alone, and a title line
    (not a numbered item) where it reaches the room left, so a notice above it does not push it off the page."""
    page: list[_Unit] = []
    for index, unit in enumerate(units):
        if _fits_lines([u.text for u in page] + [unit.text], footer, budget):
            page.append(unit)
            continue
        piece = _piece_that_fits(page, unit, footer, budget) if page and unit.choice is None else None
        if piece is not None:
            head, tail = piece
            return [*page, _Unit(head)], ([_Unit(tail)] if tail else []) + units[index + 1 :]
        if page:
            return page, units[index:]
        head, tail = _split_line(unit.text, lambda text: _fits_lines([text], footer, budget))
        return [_Unit(head, unit.choice)], ([_Unit(tail)] if tail else []) + units[index + 1 :]
    return page, []


def _piece_that_fits(page: list[_Unit], unit: _Unit, footer: list[str], budget: Budget) -> tuple[str, str] | None:
    """The head of `unit` that fills the room left on `page` and the tail for the next page, when a useful piece
    (at least MIN_TITLE_PIECE characters) fits."""
    lines = [u.text for u in page]
    head, tail = _split_line(unit.text, lambda text: _fits_lines([*lines, text], footer, budget))
    if len(head) < MIN_TITLE_PIECE or not _fits_lines([*lines, head], footer, budget):
        return None
    return head, tail


def with_notice(notice: str | None, title: str) -> str:
    """A screen title with a notice (an error reason, a confirmation) on the line above it."""
    return f"{notice}\n{title}" if notice else title


def _split_line(text: str, fits: Callable[[str], bool]) -> tuple[str, str]:
    """Cut `text` where it stops fitting, preferring a word boundary; the head always has at least one character."""
    room = max(1, _longest_fitting_prefix(text, fits))
    cut = text.rfind(" ", 0, room + 1)
    if cut > room // 2:
        room = cut
    return text[:room].rstrip(), text[room:].lstrip()


def _longest_fitting_prefix(text: str, fits: Callable[[str], bool]) -> int:
    """Largest n such that fits(text[:n]), by binary search (0 when nothing fits)."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(text[:middle]):
            low = middle
        else:
            high = middle - 1
    return low


def _render_page(spec: ScreenSpec, nav: NavLabels, groups: list[list[_Unit]], index: int) -> Page:
    is_last = index == len(groups) - 1
    footer = _footer_lines(
        nav,
        more=not is_last,
        back=(index > 0 or spec.back) and not spec.final,
        home=spec.home and not spec.final,
    )
    units = groups[index]
    choices = tuple(u.choice for u in units if u.choice is not None)
    nav_choices = tuple(Choice(*line.split(" ", 1)) for line in footer)
    return Page("\n".join([*(u.text for u in units), *footer]), choices + nav_choices)
