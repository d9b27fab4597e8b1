"""`/impact`: a read-only page for MFI staff with the aggregates as tables and server-drawn SVG charts.

Staff sign in with an admin API key through a small form. Only the key's id goes into Flask's signed session (never
the key), and it is re-checked on every request, so revoking the key signs the browser out. Forms carry a
per-session CSRF token kept in the same session.

The page speaks the languages of the catalogs (`locales/`): `?lang=fr` chooses one and the session remembers it;
otherwise the browser's Accept-Language decides, then English. Group names, periods and numbers are data and stay
as they are; the office levels the MFI named like the usual ones (country, region, branch, ...) are translated.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from accounts.models import Office
from api.auth import TooManyBadKeys, authenticate_limited
from api.models import ApiKey
from bootstrap import Services
from db import utcnow
from feeds import charts, stale
from feeds.aggregates import ALL_LEVEL, AggregatesUnavailable, Cell, available_levels, compute_levels, office_levels
from feeds.document import recent_periods
from locales import N_, NATIVE_NAMES, SUPPORTED, Translate, gettext_for
from surveys.models import PpiSettings

blueprint = Blueprint("impact", __name__, url_prefix="/impact", template_folder="templates")

KEY_ID = "impact_key_id"
CSRF = "impact_csrf"
LANGUAGE = "impact_lang"
RIGHT_TO_LEFT = frozenset({"ar"})
LEVEL_NAMES = {
    "all": N_("all clients"),
    "country": N_("country"),
    "region": N_("region"),
    "branch": N_("branch"),
    "center": N_("center"),
    "group": N_("group"),
    "officer": N_("loan officer"),
    "fund": N_("fund"),
    "product": N_("loan product"),
}
PERIOD_TABS = {"month": N_("By month"), "quarter": N_("By quarter"), "year": N_("By year")}
MOVES_NOTES = {
    "month": N_("▲ moved to a better band, ▼ to a worse one, since the previous month."),
    "quarter": N_("▲ moved to a better band, ▼ to a worse one, since the previous quarter."),
    "year": N_("▲ moved to a better band, ▼ to a worse one, since the previous year."),
}
PERIOD_COUNTS = {"month": 12, "quarter": 8, "year": 5}
ROWS_PER_LEVEL = 25
MAX_CHART_GROUPS = 6


@dataclass(frozen=True)
class LevelTable:
    level: str
    rows: list[tuple[str, list[Cell | None]]]  # group name, one cell per period
    hidden_rows: int


@blueprint.context_processor
def _language_context() -> dict[str, Any]:
    """What every page of the blueprint renders with: `_`, the language, its direction and the language links."""
    lang = _language()
    here: dict[str, Any] = request.args.to_dict()
    links = [(code, NATIVE_NAMES[code], url_for("impact.page", **{**here, "lang": code})) for code in SUPPORTED]
    return {
        "_": gettext_for(lang),
        "lang": lang,
        "text_direction": "rtl" if lang in RIGHT_TO_LEFT else "ltr",
        "languages": links,
        "level_name": _level_name,
    }


def _language() -> str:
    """The request's language, worked out once per request (the page asks for it several times)."""
    if "impact_language" not in g:
        g.impact_language = _chosen_language()
    return str(g.impact_language)


def _chosen_language() -> str:
    chosen = request.args.get("lang")
    if chosen in SUPPORTED:
        session[LANGUAGE] = chosen
        return chosen
    remembered = session.get(LANGUAGE)
    if remembered in SUPPORTED:
        return str(remembered)
    return request.accept_languages.best_match(SUPPORTED) or "en"


def _translate() -> Translate:
    return gettext_for(_language())


def _level_name(level: str) -> str:
    known = LEVEL_NAMES.get(level)
    return _translate()(known) if known else level


@blueprint.get("")
def page() -> str | Response:
    services = _services()
    with services.transaction() as db:
        if not _signed_in(db):
            return render_template("impact_sign_in.html", csrf_token=_csrf_token(), error=None)
        try:
            context = _page_context(db, services)
        except AggregatesUnavailable as exc:  # e.g. too many band labels: the message says what to run
            translate = _translate()
            heading = translate("The impact figures cannot be shown right now:")
            return Response(f"{heading} {exc}\n", status=503, content_type="text/plain; charset=utf-8")
    return render_template("impact.html", csrf_token=_csrf_token(), **context)


@blueprint.post("/sign-in")
def sign_in() -> Response | tuple[str, int]:
    _check_csrf()
    services = _services()
    translate = _translate()
    try:
        presented = request.form.get("api_key", "").strip()
        caller = authenticate_limited(services, presented, now=utcnow(), address=request.remote_addr)
    except TooManyBadKeys:
        return _sign_in_again(translate("Too many unknown keys from this address. Try again in a minute."), 429)
    if caller is None:
        return _sign_in_again(translate("That key is unknown, malformed or revoked."), 401)
    if caller.scope != "admin":
        return _sign_in_again(translate("This page needs an admin key."), 403)
    _clear_session_but_language()
    session[KEY_ID] = caller.key_id
    return redirect(url_for("impact.page"))


@blueprint.post("/sign-out")
def sign_out() -> Response:
    _check_csrf()
    _clear_session_but_language()
    return redirect(url_for("impact.page"))


def _clear_session_but_language() -> None:
    """A fresh session (no key, a new CSRF token) that still speaks the language chosen before."""
    language = session.get(LANGUAGE)
    session.clear()
    if language in SUPPORTED:
        session[LANGUAGE] = language


def _services() -> Services:
    return current_app.extensions["services"]  # type: ignore[no-any-return]


def _csrf_token() -> str:
    if CSRF not in session:
        session[CSRF] = secrets.token_urlsafe(32)
    return str(session[CSRF])


def _check_csrf() -> None:
    expected = session.get(CSRF)
    presented = request.form.get("csrf_token", "")
    if not expected or not hmac.compare_digest(str(expected), presented):
        abort(400, description="the form expired or did not come from this site; reload the page and try again")


def _sign_in_again(error: str, status: int) -> tuple[str, int]:
    return render_template("impact_sign_in.html", csrf_token=_csrf_token(), error=error), status


def _signed_in(db: Session) -> bool:
    key_id = session.get(KEY_ID)
    if key_id is None:
        return False
    key = db.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None or key.scope != "admin":
        session.pop(KEY_ID, None)
        return False
    return True


# --- page data -------------------------------------------------------------------------------------------------


def _page_context(db: Session, services: Services) -> dict[str, Any]:
    period_kind = request.args.get("period_kind", "quarter")
    if period_kind not in PERIOD_COUNTS:
        period_kind = "quarter"
    known = available_levels(db)
    only = request.args.get("level")
    levels = [only] if only in known else known
    chart_level = _chart_level(db)
    periods = recent_periods(utcnow(), period_kind, PERIOD_COUNTS[period_kind], timezone=services.settings.timezone)
    wanted = list(dict.fromkeys([ALL_LEVEL, *levels, *([chart_level] if chart_level else [])]))
    k = services.settings.suppression_k
    stale.catch_up(db)
    cells = compute_levels(db, levels=wanted, period_kind=period_kind, k=k, periods=periods)
    config = db.scalar(select(PpiSettings).order_by(PpiSettings.id.desc()).limit(1))
    line = config.headline_line if config else _any_line(cells)
    bands = [str(band["label"]) for band in (config.bands or [])] if config else []
    translate = _translate()
    return {
        "mfi_name": services.settings.mfi_name,
        "period_kind": period_kind,
        "period_labels": {kind: translate(label) for kind, label in PERIOD_TABS.items()},
        "moves_note": translate(MOVES_NOTES[period_kind]),
        "periods": periods,
        "line": line,
        "k": k,
        "tables": [_table(level, cells[level], periods, limit=None if only else ROWS_PER_LEVEL) for level in levels],
        "rate_chart": _rate_chart(cells, chart_level, periods, line, translate),
        "band_chart": _band_chart(cells[ALL_LEVEL], periods, bands, translate),
        "withheld": sum(cell.suppressed for level in levels for cell in cells[level]),
    }


def _chart_level(db: Session) -> str | None:
    """The highest office level with more than one office (regions, say), drawn next to the all-clients line."""
    for level in office_levels(db):
        if (db.scalar(select(func.count()).select_from(Office).where(Office.level == level)) or 0) > 1:
            return level
    return None


def _any_line(cells: dict[str, list[Cell]]) -> str | None:
    for cell in cells.get(ALL_LEVEL, []):
        if cell.poverty_rates:
            return next(iter(cell.poverty_rates))
    return None


def _table(level: str, cells: list[Cell], periods: list[str], *, limit: int | None) -> LevelTable:
    by_group: dict[str, dict[str, Cell]] = {}
    names: dict[str, str] = {}
    for cell in cells:
        by_group.setdefault(cell.group_id, {})[cell.period] = cell
        names[cell.group_id] = cell.group_name
    rows = [(names[group], [found.get(period) for period in periods]) for group, found in by_group.items()]
    rows.sort(key=lambda row: row[0])
    shown = rows if limit is None else rows[:limit]
    return LevelTable(level, shown, len(rows) - len(shown))


def _rate_chart(
    cells: dict[str, list[Cell]], level: str | None, periods: list[str], line: str | None, translate: Translate
) -> Any:
    if line is None:
        return None
    series = [charts.Series(translate("All clients"), _rates(cells[ALL_LEVEL], periods, line), bold=True)]
    if level:
        table = _table(level, cells[level], periods, limit=MAX_CHART_GROUPS)
        for name, row in table.rows:
            series.append(charts.Series(name, [_rate(cell, line) for cell in row]))
    return charts.line_chart(periods, series, title=translate("Poverty rate (%(line)s) by period", line=line))


def _band_chart(cells: list[Cell], periods: list[str], bands: list[str], translate: Translate) -> Any:
    by_period = {cell.period: cell for cell in cells if not cell.suppressed}
    order = bands or sorted({band for cell in by_period.values() for band in cell.band_counts})
    if not order:
        return None
    rank = {band: position for position, band in enumerate(order)}
    points: list[charts.BandPeriod | None] = []
    for period in periods:
        cell = by_period.get(period)
        if cell is None:
            points.append(None)
            continue
        moves = cell.transitions_from_previous
        improved = sum(t.clients for t in moves if rank.get(t.to_band, 0) > rank.get(t.from_band, 0))
        worsened = sum(t.clients for t in moves if rank.get(t.to_band, 0) < rank.get(t.from_band, 0))
        points.append(charts.BandPeriod(cell.band_counts, improved, worsened))
    title = translate("Clients per band, and moves since the previous period")
    return charts.band_chart(periods, order, points, title=title)


def _rates(cells: list[Cell], periods: list[str], line: str) -> list[float | None]:
    by_period = {cell.period: cell for cell in cells}
    return [_rate(by_period.get(period), line) for period in periods]


def _rate(cell: Cell | None, line: str) -> float | None:
    if cell is None or cell.suppressed:
        return None
    return cell.poverty_rates.get(line)
