"""`impact-connect consent ...`: record paper consent and show a client's consent history."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from accounts.cli import one_client
from api.cli import check_length
from bootstrap import Services
from consent import service
from consent.models import ConsentEvent
from db import utcnow


@click.group("consent", help="Data-sharing consent (the append-only ledger).")
def consent_group() -> None:
    pass


@consent_group.command("record", help="Record consent a loan officer collected on paper.")
@click.argument("who", metavar="PHONE|EXTERNAL_ID")
@click.option("--grant/--revoke", "granted", default=None, help="Whether the client agreed or withdrew.")
@click.option("--officer", required=True, help="External id of the officer who collected it, e.g. S001.")
@click.option("--lender", default=None, help="Only for this lender (default: every lender).")
@click.option("--language", default=None, help="Language the text was read in (default: the client's).")
@with_appcontext
def record_command(who: str, granted: bool | None, officer: str, lender: str | None, language: str | None) -> None:
    if granted is None:
        raise click.UsageError("say --grant or --revoke")
    check_length("--lender", lender, ConsentEvent.lender.type.length)
    services = _services()
    with services.transaction() as session:
        client = one_client(session, who, services)
        try:
            event = service.record_paper(
                session,
                client,
                granted=granted,
                officer=officer,
                lender=lender,
                language=language,
                default_language=services.settings.default_locale,
                now=utcnow(),
            )
        except service.ConsentError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(
            f"recorded {'grant' if granted else 'revocation'} for client {client.external_id}"
            f" ({event.lender or 'any lender'}), text {event.text_version} in {event.language}, officer {officer}"
        )


@consent_group.command("history", help="Show a client's consent events, oldest first.")
@click.argument("who", metavar="PHONE|EXTERNAL_ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@with_appcontext
def history_command(who: str, as_json: bool) -> None:
    services = _services()
    with services.transaction() as session:
        client = one_client(session, who, services)
        events = service.history_export(session, client.id)
    if as_json:
        click.echo(json.dumps({"client": client.external_id, "events": events}, ensure_ascii=False, indent=2))
        return
    if not events:
        click.echo(f"client {client.external_id}: no consent recorded")
        return
    for item in events:
        decision = "grant " if item["granted"] else "revoke"
        officer = f" officer {item['officer']}" if item["officer"] else ""
        click.echo(
            f"{item['recorded_at']}  {decision}  {item['purpose']}  {item['lender'] or 'any lender'}"
            f"  {item['channel']}  text {item['text_version']}/{item['language']}{officer}"
        )


def _services() -> Services:
    from cli import services

    return services()
