"""The MFI's PPI settings and the survey lifecycle: configure, record, edit, delete, and the client's poverty status.

Every channel (USSD, SMS, Telegram, the CLI, the API) records surveys through these functions, so the rules live
once: a survey is scored with the scorecard version it was taken with and keeps it forever; the date collected may
be back-dated but never lies in the MFI's future; the client's poverty status is a cache of their latest survey by
date collected (ties: the latest recorded), recomputed after every change, and so are the client's feed facts
(`feeds.facts`). Functions receive a `Session` and never commit; they raise `SurveyError` with a message fit to show
an officer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from datetime import timezone as dt_timezone
from functools import cache
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, Table, TextClause, bindparam, case, null, select, text, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from accounts.models import Client, Staff
from feeds import stale
from scoring.errors import BandsError, InvalidAnswers, ScorecardError, ScoringError, UnknownScorecard
from scoring.loader import load_scorecard
from scoring.scorecard import (
    Band,
    Bands,
    Scorecard,
    ScoreResult,
    band_for,
    describe,
    headline,
    headline_slug,
    parse_bands,
    score,
)
from surveys.models import PpiSettings, SurveyAnswer, SurveyLineResult, SurveyResponse

STATUSES = ("active", "inactive")
MODES = ("self", "officer")
EARLIEST_TIMEZONE = dt_timezone(timedelta(hours=14))  # Kiribati, UTC+14: the first place a new day starts
Mode = Literal["self", "officer"]


class SurveyError(ValueError):
    """A survey or PPI-settings request that cannot be carried out; the message says why and what to do."""


@dataclass(frozen=True)
class PpiConfig:
    scorecard_id: str
    status: str
    headline_line: str
    bands: Bands | None
    show_band_to_client: bool

    @property
    def active(self) -> bool:
        return self.status == "active"

    def bands_text(self) -> str:
        """The bands in the syntax `configure` reads ("0-24:Very poor,25-100:Other"), or "" without bands."""
        return ",".join(describe(band) for band in self.bands or ())


@dataclass(frozen=True)
class Preview:
    """What a set of answers would score under the settings; `problems` lists what is wrong with the answers."""

    headline_score: int | None
    band: str | None
    problems: tuple[str, ...]


@dataclass(frozen=True)
class PovertyStatus:
    """A client's poverty status: the headline result of their latest survey by date collected."""

    survey_id: int
    scorecard_id: str
    date_collected: date
    band: str | None
    headline_line: str | None
    headline_score: int | None
    headline_likelihood: float | None


# ------------------------------------------------------------------------------------------------ settings


def get_config(session: Session) -> PpiConfig | None:
    """The MFI's PPI settings, or None before anyone configured them."""
    row = _settings_row(session)
    return _config_from_row(row) if row else None


def check_config(
    *, scorecard_id: str, status: str, headline_line: str, bands: str | None, show_band_to_client: bool = False
) -> PpiConfig:
    """Validate settings without saving them (used by `configure` and the CLI's `--preview`)."""
    if status not in STATUSES:
        raise SurveyError(f"status must be active or inactive, not {status!r}")
    card = _scorecard(scorecard_id)
    if not card.scoreable:
        raise SurveyError(f"scorecard {scorecard_id} has no points in its source and cannot score surveys")
    slugs = card.line_slugs()
    if headline_line not in slugs:
        valid = ", ".join(slugs) if slugs else "none (this scorecard has no likelihood table)"
        raise SurveyError(f"{scorecard_id} has no poverty line {headline_line!r}; valid lines: {valid}")
    try:
        parsed = parse_bands(bands) if bands and bands.strip() else None
    except BandsError as exc:
        raise SurveyError(f"bad bands: {exc}") from None
    return PpiConfig(scorecard_id, status, headline_line, parsed, show_band_to_client)


def configure(
    session: Session,
    *,
    scorecard_id: str,
    status: str,
    headline_line: str,
    bands: str | None,
    show_band_to_client: bool | None = None,
    now: datetime,
) -> PpiConfig:
    """Save the MFI's PPI settings. `bands=None` keeps the stored bands (pausing the PPI must not lose them) and an
    empty text removes them; `show_band_to_client=None` keeps the old choice.

    Existing surveys keep their scorecard version and headline; only new surveys (and edits) use the new settings.
    """
    row = _settings_row(session)
    keep_show = row.show_band_to_client if row else False
    config = check_config(
        scorecard_id=scorecard_id,
        status=status,
        headline_line=headline_line,
        bands=bands,
        show_band_to_client=keep_show if show_band_to_client is None else show_band_to_client,
    )
    if bands is None and row is not None:
        config = replace(config, bands=_config_from_row(row).bands)
    if row is None:
        row = PpiSettings()
        session.add(row)
    row.scorecard_id = config.scorecard_id
    row.status = config.status
    row.headline_line = config.headline_line
    row.bands = [{"low": b.low, "high": b.high, "label": b.label} for b in config.bands] if config.bands else None
    row.show_band_to_client = config.show_band_to_client
    row.updated_at = now
    session.flush()
    return config


def preview(config: PpiConfig, answers: Sequence[int]) -> Preview:
    """Score `answers` under `config` without saving anything (the officer's one-shot SMS check)."""
    try:
        result = score(_scorecard(config.scorecard_id), answers)
    except InvalidAnswers as exc:
        return Preview(None, None, tuple(problem.message for problem in exc.problems))
    line = headline(result, config.headline_line)
    return Preview(line.score, _band_label(config.bands, line.score), ())


# Built once: the settings are read on every session's first hop.
_SETTINGS_ROW = select(PpiSettings).order_by(PpiSettings.id).limit(1)


def _settings_row(session: Session) -> PpiSettings | None:
    return session.scalars(_SETTINGS_ROW).first()


def _config_from_row(row: PpiSettings) -> PpiConfig:
    bands = (
        tuple(Band(int(str(b["low"])), int(str(b["high"])), str(b["label"])) for b in row.bands) if row.bands else None
    )
    return PpiConfig(row.scorecard_id, row.status, row.headline_line, bands, bool(row.show_band_to_client))


def _scorecard(scorecard_id: str) -> Scorecard:
    try:
        return load_scorecard(scorecard_id)
    except UnknownScorecard as exc:
        raise SurveyError(exc.message) from None  # without the server's file path: it reaches API callers
    except ScorecardError:  # its text names the server's file: say what to run instead
        raise SurveyError(
            f"scorecard {scorecard_id!r} cannot be loaded; `impact-connect scorecards validate` says why"
        ) from None


def _band_label(bands: Bands | None, headline_score: int | None) -> str | None:
    if not bands or headline_score is None:
        return None
    return band_for(bands, headline_score).label


# ------------------------------------------------------------------------------------------------- surveys


def create_survey(
    session: Session,
    client_id: int,
    answers: Sequence[int],
    *,
    date_collected: date,
    mode: Mode | str,
    channel: str,
    officer_id: int | None,
    now: datetime,
    scorecard_id: str | None = None,
    submission_key: str | None = None,
    timezone: str | tzinfo | None = None,
    config: PpiConfig | None = None,
) -> SurveyResponse:
    """Score and save a survey for a client, then refresh the client's poverty status.

    Uses the configured scorecard unless `scorecard_id` is given (PPI must then be configured and active). A repeated
    `submission_key` returns the survey saved the first time. `timezone` is the MFI's (settings.timezone): the date
    collected may not be after today there. Without it the check only refuses dates that are in the future
    everywhere (pass it whenever you have settings). `config` is the PPI settings to use when the caller has read
    them already (a USSD session keeps those of its first hop); without it they are read here.
    """
    config = config or get_config(session)
    card_id = scorecard_id or _active_scorecard_id(config)
    client = _require_client(session, client_id)
    _require_mode(mode)
    _require_officer(session, officer_id)
    _require_not_future(date_collected, now, timezone)
    headline_line = _headline_line_for(config, card_id)
    result = _score(card_id, answers)
    survey = SurveyResponse(
        client_id=client.id,
        scorecard_id=card_id,
        date_collected=date_collected,
        mode=mode,
        channel=channel,
        officer_id=officer_id,
        headline_line=headline_line,
        submission_key=submission_key,
        created_at=now,
        updated_at=now,
    )
    _apply_headline(survey, result, config)
    if not _inserted(session, survey):
        stored = _by_submission_key(session, submission_key) if submission_key is not None else None
        if stored is None:
            raise SurveyError("the survey could not be saved")
        return stored  # a retry, or one that raced the first submission, gets the survey that one stored
    _insert_details(session, survey.id, answers, result)
    _survey_added(session, client, survey, now)
    return survey


def _inserted(session: Session, survey: SurveyResponse) -> bool:
    """Insert the new survey's row, unless one with its submission key is stored already (a repeated submit: then
    False); the survey is then a persistent row of the session with its new id. One statement: through the ORM, a
    survey with a key took a savepoint (so that the conflict left the caller's transaction usable) and a flush, a
    fifth of the CPU of the USSD hop that submits a survey."""
    values = {name: getattr(survey, name) for name in _SURVEY_COLUMNS}
    survey_id = session.connection().execute(_INSERT_SURVEY, values).scalar()
    if survey_id is None:
        return False
    survey.id = survey_id
    make_transient_to_detached(survey)  # as if loaded: its answers and line results load when first read
    session.add(survey)
    return True


_SURVEYS = cast(Table, SurveyResponse.__table__)
_SURVEY_COLUMNS = tuple(column.name for column in _SURVEYS.columns if column.name != "id")
# SQL text: SQLAlchemy compiles the dialects' `insert().on_conflict_do_nothing()` again on every execution.
_INSERT_SURVEY = text(
    f"INSERT INTO {_SURVEYS.name} ({', '.join(_SURVEY_COLUMNS)})"
    f" VALUES ({', '.join(':' + name for name in _SURVEY_COLUMNS)}) ON CONFLICT DO NOTHING RETURNING id"
).bindparams(*(bindparam(name, type_=_SURVEYS.c[name].type) for name in _SURVEY_COLUMNS))


def edit_survey(
    session: Session,
    survey_id: int,
    answers: Sequence[int],
    *,
    now: datetime,
    date_collected: date | None = None,
    timezone: str | tzinfo | None = None,
) -> SurveyResponse:
    """Replace a survey's answers (and optionally its date), rescore with the survey's own scorecard version and
    today's bands, and refresh the client's poverty status."""
    survey = _require_survey(session, survey_id)
    if date_collected is not None:
        _require_not_future(date_collected, now, timezone)
        survey.date_collected = date_collected
    result = _score(survey.scorecard_id, answers)
    _apply_result(survey, answers, result, get_config(session))
    survey.updated_at = now
    session.flush()
    _surveys_changed(session, _require_client(session, survey.client_id), now)
    return survey


def delete_survey(session: Session, survey_id: int, *, now: datetime) -> None:
    """Delete a survey; the client's poverty status falls back to their previous survey, or to none."""
    survey = _require_survey(session, survey_id)
    client = _require_client(session, survey.client_id)
    session.delete(survey)
    session.flush()
    _surveys_changed(session, client, now)


def reband_all(session: Session, *, now: datetime) -> int:
    """Give every survey the band today's settings give its headline score, and each client's status the band of
    the survey it points at; returns how many surveys changed band. For when the bands were renamed (a translation,
    a typo) or moved and the past should be read in today's bands; without bands every band is cleared. The feed's
    facts are then rebuilt by the caller (`feeds.facts.rebuild_facts`)."""
    config = get_config(session)
    session.flush()
    table = SurveyResponse.__table__
    assert isinstance(table, Table)  # mapped tables are typed as FromClause
    bands = config.bands if config and config.bands else ()
    score = table.c.headline_score
    band = case(*((score.between(b.low, b.high), b.label) for b in bands), else_=null()) if bands else null()
    query = update(table).where(table.c.band.is_distinct_from(band)).values(band=band, updated_at=now)
    changed = cast(CursorResult[Any], session.execute(query)).rowcount or 0
    latest_band = select(table.c.band).where(table.c.id == Client.poverty_survey_id).scalar_subquery()
    session.execute(update(Client).where(Client.poverty_survey_id.is_not(None)).values(poverty_band=latest_band))
    session.expire_all()
    return changed


def get_survey(session: Session, survey_id: int) -> SurveyResponse | None:
    return session.get(SurveyResponse, survey_id)


def client_surveys(session: Session, client_id: int) -> list[SurveyResponse]:
    """A client's surveys, oldest first by date collected (ties in the order they were recorded)."""
    query = (
        select(SurveyResponse)
        .where(SurveyResponse.client_id == client_id)
        .order_by(SurveyResponse.date_collected, SurveyResponse.id)
    )
    return list(session.scalars(query))


def client_status(session: Session, client: Client) -> PovertyStatus | None:
    """The client's poverty status (from the cached columns), or None when they have no survey."""
    if client.poverty_survey_id is None:
        return None
    survey = session.get(SurveyResponse, client.poverty_survey_id)
    if survey is None:
        return None
    return PovertyStatus(
        survey_id=survey.id,
        scorecard_id=survey.scorecard_id,
        date_collected=survey.date_collected,
        band=survey.band,
        headline_line=survey.headline_line,
        headline_score=survey.headline_score,
        headline_likelihood=survey.headline_likelihood,
    )


def _survey_added(session: Session, client: Client, survey: SurveyResponse, now: datetime) -> None:
    """`_surveys_changed` for a new survey, without reading the client's surveys: the newest id wins a tie, so the
    new survey is the client's latest unless the one their status points at is dated later."""
    if client.poverty_date is None or survey.date_collected >= client.poverty_date:
        _point_status_at(session, client, survey)
    stale.mark(session, [client.id], now=now)


def _surveys_changed(session: Session, client: Client, now: datetime) -> None:
    """What follows a client's surveys, in the same transaction: their poverty status, and a mark that their feed
    facts are out of date (the next reader of the aggregates recomputes them: `feeds/stale.py`)."""
    refresh_poverty_status(session, client)
    stale.mark(session, [client.id], now=now)


def refresh_poverty_status(session: Session, client: Client) -> None:
    """Point the client's cached poverty columns at their latest survey by date collected (ties: latest id)."""
    query = (
        select(SurveyResponse)
        .where(SurveyResponse.client_id == client.id)
        .order_by(SurveyResponse.date_collected.desc(), SurveyResponse.id.desc())
        .limit(1)
    )
    _point_status_at(session, client, session.scalars(query).first())


def _point_status_at(session: Session, client: Client, latest: SurveyResponse | None) -> None:
    """Write the client's cached poverty columns with one statement, and set them on the loaded row as stored. Left to
    the ORM, the changed row cost a flush of the unit of work (a seventh of the USSD hop that submits a survey)."""
    values = (latest.id, latest.scorecard_id, latest.band, latest.date_collected) if latest else (None,) * 4
    status = dict(zip(_STATUS_COLUMNS, values, strict=True))
    session.connection().execute(_POINT_STATUS, {"client_id": client.id, **{f"new_{k}": v for k, v in status.items()}})
    for name, value in status.items():
        set_committed_value(client, name, value)


_STATUS_COLUMNS = ("poverty_survey_id", "poverty_scorecard_id", "poverty_band", "poverty_date")
_CLIENTS = cast(Table, Client.__table__)
_POINT_STATUS = (
    update(_CLIENTS)
    .where(_CLIENTS.c.id == bindparam("client_id"))
    .values({name: bindparam(f"new_{name}", type_=_CLIENTS.c[name].type) for name in _STATUS_COLUMNS})
)


# -------------------------------------------------------------------------------------------------- helpers


def _active_scorecard_id(config: PpiConfig | None) -> str:
    if config is None:
        raise SurveyError("PPI is not configured: run `impact-connect ppi configure` first")
    if not config.active:
        raise SurveyError("PPI surveys are inactive: set the status to active to record surveys")
    return config.scorecard_id


def _headline_line_for(config: PpiConfig | None, scorecard_id: str) -> str | None:
    """The configured headline line if this scorecard has it; otherwise its first line (or none)."""
    return headline_slug(_scorecard(scorecard_id).line_slugs(), config.headline_line if config else None)


def _score(scorecard_id: str, answers: Sequence[int]) -> ScoreResult:
    try:
        return score(_scorecard(scorecard_id), list(answers))
    except InvalidAnswers as exc:
        raise SurveyError(f"answers do not fit {scorecard_id}: {exc}") from None
    except ScoringError as exc:
        raise SurveyError(str(exc)) from None


def _apply_result(
    survey: SurveyResponse, answers: Sequence[int], result: ScoreResult, config: PpiConfig | None
) -> None:
    """Write answers, per-line results, headline and band onto the survey, updating rows in place."""
    _sync_answers(survey, answers)
    _sync_line_results(survey, result)
    _apply_headline(survey, result, config)


def _insert_details(session: Session, survey_id: int, answers: Sequence[int], result: ScoreResult) -> None:
    """A new survey's answers and per-line results, one statement each, their rows sent as one JSON array that the
    database unpacks. The ORM's unit of work for ~20 new child objects was most of the CPU of the USSD hop that
    submits a survey, and an executemany of the same rows still cost a third of it (psycopg's per-row work in
    pipeline mode): bench/README.md. The survey's `answers` and `line_results` load from the database when first
    read."""
    connection = session.connection()
    answer_rows, line_rows = _detail_inserts(connection.dialect.name)
    connection.execute(answer_rows, {"survey_id": survey_id, "positions": json.dumps(list(answers))})
    if result.lines:
        lines = [{"slug": line.slug, "score": line.score, "likelihood": line.likelihood} for line in result.lines]
        connection.execute(line_rows, {"survey_id": survey_id, "lines": json.dumps(lines)})


# The JSON arrays as rows: PostgreSQL's json functions, SQLite's json_each (both parse a float's shortest repr back to
# the same double). Question numbers are the answers' 1-based positions.
_DETAIL_ROWS = {
    "postgresql": (
        "SELECT :survey_id, CAST(answer.number AS INTEGER), CAST(answer.position AS INTEGER)"
        " FROM json_array_elements_text(CAST(:positions AS JSON)) WITH ORDINALITY AS answer(position, number)",
        "SELECT :survey_id, line.slug, line.score, line.likelihood"
        " FROM json_to_recordset(CAST(:lines AS JSON)) AS line(slug TEXT, score INTEGER, likelihood DOUBLE PRECISION)",
    ),
    "sqlite": (
        "SELECT :survey_id, answer.key + 1, answer.value FROM json_each(:positions) AS answer",
        "SELECT :survey_id, json_extract(line.value, '$.slug'), json_extract(line.value, '$.score'),"
        " json_extract(line.value, '$.likelihood') FROM json_each(:lines) AS line",
    ),
}


@cache
def _detail_inserts(dialect: str) -> tuple[TextClause, TextClause]:
    answers, lines = _DETAIL_ROWS[dialect]
    return (
        text(f"INSERT INTO {SurveyAnswer.__tablename__} (survey_id, question_number, option_position) {answers}"),
        text(f"INSERT INTO {SurveyLineResult.__tablename__} (survey_id, line_slug, score, likelihood) {lines}"),
    )


def _apply_headline(survey: SurveyResponse, result: ScoreResult, config: PpiConfig | None) -> None:
    """The survey's headline score and likelihood (its headline line's) and its band."""
    line = next((r for r in result.lines if r.slug == survey.headline_line), None)
    survey.headline_score = line.score if line else result.total
    survey.headline_likelihood = line.likelihood if line else None
    survey.band = _band_label(config.bands if config else None, survey.headline_score)


def _sync_answers(survey: SurveyResponse, answers: Sequence[int]) -> None:
    by_number = {row.question_number: row for row in survey.answers}
    for number, position in enumerate(answers, start=1):
        if number in by_number:
            by_number[number].option_position = position
        else:
            survey.answers.append(SurveyAnswer(question_number=number, option_position=position))
    survey.answers[:] = [row for row in survey.answers if row.question_number <= len(answers)]


def _sync_line_results(survey: SurveyResponse, result: ScoreResult) -> None:
    by_slug = {row.line_slug: row for row in survey.line_results}
    for line in result.lines:
        row = by_slug.get(line.slug)
        if row is None:
            survey.line_results.append(
                SurveyLineResult(line_slug=line.slug, score=line.score, likelihood=line.likelihood)
            )
        else:
            row.score, row.likelihood = line.score, line.likelihood
    slugs = {line.slug for line in result.lines}
    survey.line_results[:] = [row for row in survey.line_results if row.line_slug in slugs]


def _by_submission_key(session: Session, key: str) -> SurveyResponse | None:
    return session.scalars(select(SurveyResponse).where(SurveyResponse.submission_key == key)).first()


def _require_client(session: Session, client_id: int) -> Client:
    """The client's row, locked until commit (PostgreSQL) and read afresh: two surveys of one client saved at once
    would otherwise each compare against the status they read before the other committed, and the second to
    commit could point the status at the older survey."""
    client = session.scalars(_CLIENT_FOR_UPDATE, {"client_id": client_id}).first()
    if client is None:
        raise SurveyError(f"no client with id {client_id}: only clients can be surveyed")
    return client


# Built once: `session.get(..., with_for_update=True, populate_existing=True)` builds a new statement, and its cache
# key, on every call, which was a sixth of the CPU of the USSD hop that submits a survey.
_CLIENT_FOR_UPDATE = (
    select(Client)
    .where(Client.id == bindparam("client_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def _require_survey(session: Session, survey_id: int) -> SurveyResponse:
    survey = session.get(SurveyResponse, survey_id)
    if survey is None:
        raise SurveyError(f"no survey with id {survey_id}")
    return survey


def _require_officer(session: Session, officer_id: int | None) -> None:
    if officer_id is not None and session.get(Staff, officer_id) is None:
        raise SurveyError(f"no staff member with id {officer_id}")


def _require_mode(mode: str) -> None:
    if mode not in MODES:
        raise SurveyError(f"mode must be self or officer, not {mode!r}")


def _require_not_future(date_collected: date, now: datetime, timezone: str | tzinfo | None) -> None:
    today = _latest_today(now, timezone)
    if date_collected > today:
        raise SurveyError(
            f"date collected {date_collected.isoformat()} is in the future (today is {today.isoformat()})"
        )


def _latest_today(now: datetime, timezone: str | tzinfo | None) -> date:
    """Today in the MFI's timezone; without one, the latest date anywhere on Earth (so a caller's local today in any
    timezone is never refused, while a date beyond it always is)."""
    zone = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    if zone is not None:
        return now.astimezone(zone).date()
    return now.astimezone(EARLIEST_TIMEZONE).date()
