"""The `impact-connect` console script, built on Flask's CLI.

Each feature package contributes its own click group; this module only registers them in one explicit list and
turns expected failures (bad settings, unreachable database or Redis) into one clear line and a non-zero exit.
"""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy.exc import OperationalError

import migrate
from app import create_app
from bootstrap import Services
from settings import SettingsError


def services() -> Services:
    """The services of the app the CLI loaded."""
    return current_app.extensions["services"]  # type: ignore[no-any-return]


@click.group("db", help="Database schema migrations.")
def db_group() -> None:
    pass


@db_group.command("upgrade", help="Create or upgrade the schema to the latest revision.")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    migrate.upgrade(services().settings, revision)
    click.echo(f"database upgraded to {revision}")


@db_group.command("downgrade", help="Downgrade the schema to REVISION.")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    migrate.downgrade(services().settings, revision)
    click.echo(f"database downgraded to {revision}")


def _command_groups() -> list[click.Command]:
    from accounts.cli import clients_group
    from api.cli import apikeys_group
    from consent.cli import consent_group
    from feeds.cli import feed_group
    from importer.cli import import_command
    from scoring.cli import make_scorecards_group
    from simulator.cli import demo_command
    from simulator.terminal import simulate_group
    from surveys.cli import headline_settings, ppi_group, surveys_group
    from worker import worker_command

    return [
        db_group,
        import_command,
        demo_command,
        make_scorecards_group(headline_settings),
        ppi_group,
        surveys_group,
        clients_group,
        consent_group,
        apikeys_group,
        feed_group,
        simulate_group,
        worker_command,
    ]


cli = FlaskGroup(create_app=lambda: create_app(), add_default_commands=True, help="impact-connect service")


def main() -> None:
    for group in _command_groups():
        cli.add_command(group)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    except OperationalError as exc:
        click.echo(f"database unreachable: {str(exc.orig).strip().splitlines()[0]}", err=True)
        sys.exit(2)
    except Exception as exc:
        import redis

        if isinstance(exc, redis.exceptions.ConnectionError):
            click.echo(f"redis unreachable: {exc}", err=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
