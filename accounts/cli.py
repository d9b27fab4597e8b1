"""`impact-connect clients ...`: look up a client, issue activation codes, unlock and reset PINs, show the audit trail.

Officers run these at the branch when a client is new, locked out or has forgotten their PIN. The activation code is
printed once (only its hash is stored); every action is recorded in the PIN audit trail under the officer's id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from accounts import service
from accounts.limiter import build_limiter
from accounts.models import Client, Staff
from bootstrap import Services
from db import as_utc, utcnow
from surveys.cli import client_show_command


@click.group("clients", help="Client look-up and account administration.")
def clients_group() -> None:
    pass


def _services() -> Services:
    return current_app.extensions["services"]  # type: ignore[no-any-return]


def one_client(session: Session, who: str, services: Services) -> Client:
    """The one client meant by WHO (phone or external id), or a one-line error; `consent` commands use it too."""
    found = service.find_clients(session, who, default_region=services.settings.default_region)
    if not found:
        raise click.ClickException(f"no client with phone or external id {who!r}")
    if len(found) > 1:
        ids = ", ".join(client.external_id for client in found)
        raise click.ClickException(f"several clients share this phone ({ids}); give the external id instead")
    return found[0]


def _officer(session: Session, who: str, services: Services) -> Staff:
    staff = service.find_staff(session, who, default_region=services.settings.default_region)
    if staff is None:
        raise click.ClickException(f"no staff member {who!r}")
    return staff


def _local(moment: datetime, services: Services) -> str:
    return moment.astimezone(ZoneInfo(services.settings.timezone)).strftime("%Y-%m-%d %H:%M %Z")


officer_option = click.option("--officer", required=True, help="The officer doing this (staff external id or phone).")


@clients_group.command("activation-code", help="Issue a one-time activation code for WHO (PHONE or EXTERNAL_ID).")
@click.argument("who")
@officer_option
@with_appcontext
def activation_code_command(who: str, officer: str) -> None:
    services = _services()
    now = utcnow()
    with services.transaction() as session:
        client = one_client(session, who, services)
        staff = _officer(session, officer, services)
        if client.pin_hash:
            raise click.ClickException(
                f"{client.name} ({client.external_id}) already has a PIN, so the dialogue asks for it, never for a"
                f" code. If they forgot it, reset it first: impact-connect clients reset-pin {client.external_id}"
                " --officer ..."
            )
        ttl = services.settings.activation_code_ttl_hours
        code = service.issue_activation_code(
            session, client, issued_by=f"staff:{staff.external_id}", now=now, ttl_hours=ttl
        )
        name, external_id = client.name, client.external_id
    click.echo(f"Activation code for {name} ({external_id}): {code}")
    click.echo(f"It sets one PIN and works until {_local(now + timedelta(hours=ttl), services)}.")


@clients_group.command("unlock", help="Lift a PIN lock on WHO (PHONE or EXTERNAL_ID).")
@click.argument("who")
@officer_option
@with_appcontext
def unlock_command(who: str, officer: str) -> None:
    name, _ = _as_officer(who, officer, service.unlock)
    click.echo(f"{name} is unlocked; their PIN is unchanged.")


@clients_group.command("reset-pin", help="Forget WHO's PIN; they activate again with a new code.")
@click.argument("who")
@officer_option
@with_appcontext
def reset_pin_command(who: str, officer: str) -> None:
    name, external_id = _as_officer(who, officer, service.reset_pin)
    click.echo(
        f"{name}'s PIN is reset. Issue a new code: impact-connect clients activation-code {external_id} --officer ..."
    )


def _as_officer(who: str, officer: str, action: Callable[..., None]) -> tuple[str, str]:
    """Run an audited PIN action (unlock, reset) on WHO for OFFICER; returns the client's name and external id."""
    services = _services()
    with services.transaction() as session:
        client = one_client(session, who, services)
        staff = _officer(session, officer, services)
        action(session, client, actor=f"staff:{staff.external_id}", now=utcnow(), limiter=build_limiter(services))
        return client.name, client.external_id


@clients_group.command("audit", help="Show WHO's PIN history: codes issued, activations, locks, unlocks, resets.")
@click.argument("who")
@with_appcontext
def audit_command(who: str) -> None:
    services = _services()
    with services.transaction() as session:
        client = one_client(session, who, services)
        rows = [(row.at, row.action, row.actor) for row in service.pin_history(session, client.id)]
        locked = service.is_locked(client, utcnow())
        heading = f"{client.name} ({client.external_id}): PIN {'set' if client.pin_hash else 'not set'}"
    click.echo(heading + (", locked" if locked else ""))
    if not rows:
        click.echo("no PIN events yet")
    for at, action, actor in rows:
        click.echo(f"{_local(as_utc(at), services)}  {action:<24} {actor}")


clients_group.add_command(client_show_command)
