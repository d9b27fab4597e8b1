"""Run Alembic from code, so `impact-connect db upgrade` and the tests need no alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from feeds.models import FACT_PARTITIONS
from settings import Settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings.database_url), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings.database_url), revision)


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """For comparing the database with the models: PostgreSQL's partitions of `feed_facts` are part of that table
    (created by its migration), not tables of their own."""
    return not (type_ == "table" and name in FACT_PARTITIONS.values())
