"""`impact-connect apikeys ...`: create, list and revoke API keys."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from api import keys
from api.models import ApiKey
from bootstrap import Services
from db import utcnow


@click.group("apikeys", help="API keys for the portal, lenders and admins.")
def apikeys_group() -> None:
    pass


@apikeys_group.command("create", help="Create a key and print it once; only its hash is kept.")
@click.option("--scope", type=click.Choice(keys.SCOPES), required=True)
@click.option("--name", default=None, help="A label to recognise the key by.")
@click.option("--lender", default=None, help="Lender keys: the lender's code, for per-lender consent.")
@click.option("--funds", default=None, help="Lender keys: only clients with an account in these funds (F1,F2).")
@click.option("--offices", default=None, help="Lender keys: only clients under these offices (O2,O3).")
@with_appcontext
def create_command(scope: str, name: str | None, lender: str | None, funds: str | None, offices: str | None) -> None:
    check_length("--name", name, ApiKey.name.type.length)
    check_length("--lender", lender, ApiKey.lender.type.length)
    with _services().transaction() as session:
        try:
            key, plaintext = keys.create_key(
                session,
                scope=scope,
                name=name,
                lender=lender,
                funds=_split(funds),
                offices=_split(offices),
                now=utcnow(),
            )
        except keys.ApiKeyError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"created {key.scope} key {key.prefix} ({key.name}). Copy it now, it is not shown again:")
        click.echo(plaintext)


@apikeys_group.command("list", help="List keys (prefix, scope, limits, last use); never the keys themselves.")
@with_appcontext
def list_command() -> None:
    with _services().transaction() as session:
        found = keys.list_keys(session)
    if not found:
        click.echo("no API keys")
    for key in found:
        limits = []
        if key.lender:
            limits.append(f"lender={key.lender}")
        if key.funds:
            limits.append("funds=" + ",".join(key.funds))
        if key.offices:
            limits.append("offices=" + ",".join(key.offices))
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
        click.echo(f"{key.prefix}  {key.scope:<6}  {state:<24}  last used {used:<16}  {key.name}  {' '.join(limits)}")


@apikeys_group.command("revoke", help="Revoke the key with PREFIX; requests with it fail from now on.")
@click.argument("prefix")
@with_appcontext
def revoke_command(prefix: str) -> None:
    with _services().transaction() as session:
        if not keys.revoke_key(session, prefix, now=utcnow()):
            raise click.ClickException(f"no API key with prefix {prefix!r}")
    click.echo(f"revoked {prefix}")


def check_length(option: str, value: str | None, longest: int) -> None:
    """Refuse what the model's column cannot hold (PostgreSQL raises DataError on it, SQLite stores it anyway); the
    consent commands use it too."""
    if value is not None and len(value) > longest:
        raise click.BadParameter(f"at most {longest} characters, not {len(value)}", param_hint=f"'{option}'")


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _services() -> Services:
    from cli import services

    return services()
