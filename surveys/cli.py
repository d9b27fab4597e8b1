"""`impact-connect ppi configure|show`, `clients show` and `surveys record|edit|delete`: the MFI's PPI settings, a
client's poverty status and survey history, and officer-side survey corrections from the terminal.

Commands are edges: each opens one transaction, calls `surveys.service`, and turns a `SurveyError` into a one-line
error with exit status 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import ScriptInfo, with_appcontext
from sqlalchemy.orm import Session

from accounts.models import Client, Office
from bootstrap import Services
from db import utcnow
from feeds.schedule import survey_changed
from scoring.loader import load_scorecard
from scoring.scorecard import Band, Bands, Scorecard
from surveys import service
from surveys.models import SurveyResponse
from surveys.service import PpiConfig, SurveyError

T = TypeVar("T")


def _services() -> Services:
    return current_app.extensions["services"]  # type: ignore[no-any-return]


def _services_if_any() -> Services | None:
    """The app's services from the current app, else from the app the CLI would load; None outside both."""
    if current_app:
        return _services()
    context = click.get_current_context(silent=True)
    info = context.find_object(ScriptInfo) if context else None
    if context is None or info is None:
        return None
    app = info.load_app()
    context.with_resource(app.app_context())
    return _services()


@contextmanager
def _unit_of_work() -> Iterator[Session]:
    with _services().transaction() as session:
        yield session


def _guarded(action: Callable[[], T]) -> T:
    try:
        return action()
    except SurveyError as exc:
        raise click.ClickException(str(exc)) from None


# ------------------------------------------------------------------------------------------------------ ppi


@click.group("ppi", help="The MFI's PPI settings: scorecard, status, headline poverty line and bands.")
def ppi_group() -> None:
    pass


@ppi_group.command("configure", help="Set the PPI scorecard, status, headline line and optional bands.")
@click.option("--scorecard", "scorecard_id", required=True, help="Scorecard id, e.g. KEN-2024.")
@click.option("--status", type=click.Choice(service.STATUSES), required=True)
@click.option("--headline-line", required=True, help="Slug of the poverty line reported as the headline.")
@click.option(
    "--bands",
    default=None,
    help='Score bands covering 0-100, e.g. "0-24:Very poor,25-100:Other" (unchanged when not given; "" removes them).',
)
@click.option(
    "--show-band-to-client/--hide-band-from-client",
    "show_band",
    default=None,
    help="Whether clients see their band after a survey (unchanged when not given).",
)
@click.option("--preview", is_flag=True, help="Show the bands and likelihoods at their edges; save nothing.")
@with_appcontext
def configure_command(
    scorecard_id: str, status: str, headline_line: str, bands: str | None, show_band: bool | None, preview: bool
) -> None:
    if preview:
        config = _guarded(
            lambda: service.check_config(
                scorecard_id=scorecard_id,
                status=status,
                headline_line=headline_line,
                bands=bands,
                show_band_to_client=bool(show_band),
            )
        )
        click.echo("\n".join(preview_lines(config, load_scorecard(config.scorecard_id))))
        click.echo("Not saved (preview).")
        return
    with _unit_of_work() as session:
        config = _guarded(
            lambda: service.configure(
                session,
                scorecard_id=scorecard_id,
                status=status,
                headline_line=headline_line,
                bands=bands,
                show_band_to_client=show_band,
                now=utcnow(),
            )
        )
    click.echo("PPI settings saved.")
    click.echo("\n".join(config_lines(config)))


@ppi_group.command(
    "reband",
    help="Give every past survey the band today's bands give its score (after renaming or moving the bands), then "
    "rebuild the feed's facts. Survey writes wait until it is done.",
)
@with_appcontext
def reband_command() -> None:
    from feeds.facts import forget_unused_bands, rebuild_facts
    from feeds.sums import current

    with _unit_of_work() as session:
        changed = service.reband_all(session, now=utcnow())
        rebuild_facts(session)  # marks every profile's sums for recomputing...
        forget_unused_bands(session)
        current(session)  # ...in the layout without the old labels
    click.echo(f"{changed:,} surveys given today's bands; the feed's facts rebuilt")


@ppi_group.command("show", help="Show the MFI's PPI settings.")
@with_appcontext
def show_command() -> None:
    with _unit_of_work() as session:
        config = service.get_config(session)
    if config is None:
        click.echo("PPI is not configured (run `impact-connect ppi configure`).")
        return
    click.echo("\n".join(config_lines(config)))


def config_lines(config: PpiConfig) -> list[str]:
    card = load_scorecard(config.scorecard_id)
    line = card.line(config.headline_line)
    return [
        f"Scorecard:     {card.id} ({card.title})",
        f"Status:        {config.status}",
        f"Headline line: {line.slug} ({line.label})",
        f"Bands:         {config.bands_text() or 'none (surveys get no band)'}",
        f"Band shown to client: {'yes' if config.show_band_to_client else 'no'}",
    ]


def preview_lines(config: PpiConfig, card: Scorecard) -> list[str]:
    """The settings, then for each band the likelihood on every poverty line at the band's low and high score."""
    lines = config_lines(config)
    if not config.bands:
        return [*lines, "No bands: surveys get a score and likelihoods but no band."]
    width = max(len(line.label) for line in card.lines)
    for band in config.bands:
        lines += ["", *band_edge_lines(band, card, width)]
    return lines


def band_edge_lines(band: Band, card: Scorecard, width: int) -> list[str]:
    low, high = f"score {band.low}", f"score {band.high}"
    rows = [f"Band {band.label!r} ({band.low}-{band.high}): likelihood of being below each line"]
    rows.append(f"  {'poverty line':<{width}}  {low:>10}  {high:>10}")
    for line in card.lines:
        at_low, at_high = line.likelihoods[band.low], line.likelihoods[band.high]
        rows.append(f"  {line.label:<{width}}  {at_low:>10.1%}  {at_high:>10.1%}")
    return rows


def headline_settings() -> tuple[str, Bands | None] | None:
    """The MFI's headline line and bands, for `scorecards score` (None outside an app or before PPI settings exist)."""
    services = _services_if_any()
    if services is None:
        return None
    with services.transaction() as session:
        config = service.get_config(session)
    return (config.headline_line, config.bands) if config else None


# --------------------------------------------------------------------------------------------- clients show


@click.command("show", help="Show a client's poverty status and surveys (PHONE or EXTERNAL_ID).")
@click.argument("who")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_appcontext
def client_show_command(who: str, as_json: bool) -> None:
    with _unit_of_work() as session:
        clients = _find_clients(session, who)
        if not clients:
            raise click.ClickException(f"no client with external id or phone {who!r}")
        reports = [client_report(session, client) for client in clients]
    if as_json:
        click.echo(json.dumps({"clients": reports}, indent=2, ensure_ascii=False))
        return
    click.echo("\n\n".join("\n".join(report_lines(report)) for report in reports))


def _find_clients(session: Session, who: str) -> list[Client]:
    from accounts.service import find_clients

    return find_clients(session, who, default_region=_services().settings.default_region)


def client_report(session: Session, client: Client) -> dict[str, Any]:
    """A client's poverty status and surveys as plain data (the JSON output; the text output is built from it)."""
    status = service.client_status(session, client)
    office = session.get(Office, client.office_id)
    return {
        "external_id": client.external_id,
        "name": client.name,
        "office": office.name if office else None,
        "poverty_status": None
        if status is None
        else {
            "survey_id": status.survey_id,
            "scorecard": status.scorecard_id,
            "band": status.band,
            "date_collected": status.date_collected.isoformat(),
            "headline_line": status.headline_line,
            "headline_score": status.headline_score,
            "headline_likelihood": status.headline_likelihood,
        },
        "surveys": [survey_summary(s) for s in service.client_surveys(session, client.id)],
    }


def survey_summary(survey: SurveyResponse) -> dict[str, Any]:
    return {
        "id": survey.id,
        "date_collected": survey.date_collected.isoformat(),
        "scorecard": survey.scorecard_id,
        "headline_line": survey.headline_line,
        "headline_score": survey.headline_score,
        "band": survey.band,
        "mode": survey.mode,
        "channel": survey.channel,
    }


def report_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"Client {report['external_id']}: {report['name']} ({report['office']})"]
    status = report["poverty_status"]
    if status is None:
        lines.append("Poverty status: no survey yet")
    else:
        likelihood = (
            "" if status["headline_likelihood"] is None else f", likelihood {status['headline_likelihood']:.1%}"
        )
        lines.append(
            f"Poverty status: {status['scorecard']}, band {status['band'] or '-'}, collected {status['date_collected']}"
            f" (score {_dash(status['headline_score'])} on {status['headline_line'] or '-'}{likelihood})"
        )
    surveys = report["surveys"]
    lines.append(f"Surveys ({len(surveys)}):" if surveys else "Surveys: none")
    if surveys:
        lines.append(f"  {'id':>6}  {'date':<10}  {'scorecard':<14}  {'score':>5}  {'band':<16}  {'mode':<7}  channel")
    for s in surveys:
        lines.append(
            f"  {s['id']:>6}  {s['date_collected']:<10}  {s['scorecard']:<14}  {_dash(s['headline_score']):>5}"
            f"  {s['band'] or '-':<16}  {s['mode']:<7}  {s['channel']}"
        )
    return lines


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


# -------------------------------------------------------------------------------------------------- surveys


@click.group("surveys", help="Record, correct or delete a client's PPI survey from the terminal.")
def surveys_group() -> None:
    pass


@surveys_group.command("record", help="Record a survey for CLIENT (PHONE or EXTERNAL_ID), officer-assisted.")
@click.argument("who")
@click.option("--answers", required=True, help="Answer positions, 1-based, comma-separated: 3,1,2,...")
@click.option("--date", "collected", type=click.DateTime(["%Y-%m-%d"]), help="Date collected (default: today).")
@click.option("--officer", help="The officer's staff external id or phone.")
@with_appcontext
def record_command(who: str, answers: str, collected: datetime | None, officer: str | None) -> None:
    settings = _services().settings
    now = utcnow()
    with _unit_of_work() as session:
        client = _one_client(session, who)
        officer_id = _officer_id(session, officer)
        recorded = _guarded(
            lambda: service.create_survey(
                session,
                client.id,
                parse_answers(answers),
                date_collected=collected.date() if collected else _today(now, settings.timezone),
                mode="officer",
                channel="cli",
                officer_id=officer_id,
                now=now,
                timezone=settings.timezone,
            )
        )
        message = f"Survey {recorded.id} recorded: {_result_text(recorded)}"
    survey_changed(_services())
    click.echo(message)


@surveys_group.command("edit", help="Replace the answers (and optionally the date) of survey ID and rescore it.")
@click.argument("survey_id", type=int)
@click.option("--answers", required=True, help="Answer positions, 1-based, comma-separated: 3,1,2,...")
@click.option("--date", "collected", type=click.DateTime(["%Y-%m-%d"]), help="New date collected.")
@with_appcontext
def edit_command(survey_id: int, answers: str, collected: datetime | None) -> None:
    with _unit_of_work() as session:
        edited = _guarded(
            lambda: service.edit_survey(
                session,
                survey_id,
                parse_answers(answers),
                now=utcnow(),
                date_collected=collected.date() if collected else None,
                timezone=_services().settings.timezone,
            )
        )
        message = f"Survey {edited.id} rescored: {_result_text(edited)}"
    survey_changed(_services())
    click.echo(message)


@surveys_group.command("delete", help="Delete survey ID; the client's status falls back to their previous survey.")
@click.argument("survey_id", type=int)
@with_appcontext
def delete_command(survey_id: int) -> None:
    with _unit_of_work() as session:
        _guarded(lambda: service.delete_survey(session, survey_id, now=utcnow()))
    survey_changed(_services())
    click.echo(f"Survey {survey_id} deleted.")


def parse_answers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise click.BadParameter("answers are 1-based positions separated by commas, e.g. 3,1,2") from None


def _one_client(session: Session, who: str) -> Client:
    clients = _find_clients(session, who)
    if not clients:
        raise click.ClickException(f"no client with external id or phone {who!r}")
    if len(clients) > 1:
        ids = ", ".join(c.external_id for c in clients)
        raise click.ClickException(f"{len(clients)} clients share that phone ({ids}): give the external id")
    return clients[0]


def _officer_id(session: Session, who: str | None) -> int | None:
    if who is None:
        return None
    from accounts.service import find_staff

    staff = find_staff(session, who, default_region=_services().settings.default_region)
    if staff is None:
        raise click.ClickException(f"no staff member with external id or phone {who!r}")
    return staff.id


def _today(now: datetime, timezone: str) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def _result_text(survey: SurveyResponse) -> str:
    band = f", band {survey.band}" if survey.band else ""
    return (
        f"{survey.scorecard_id}, {survey.date_collected.isoformat()}, "
        f"score {_dash(survey.headline_score)} on {survey.headline_line or '-'}{band}"
    )
