"""Configuration, read once from the environment into one immutable object.

Everything else receives a `Settings`; nothing else reads `os.environ`. Casting is strict: a bad value stops
the process with a message naming the variable, and production mode refuses the development defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent
DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_ROOT / 'instance' / 'impact-connect.sqlite'}"
DEV_SECRET_KEY = "dev-only-not-secret"


class SettingsError(ValueError):
    """A configuration value is missing, malformed, or unsafe for the chosen environment."""


@dataclass(frozen=True)
class Settings:
    app_env: str = "development"
    database_url: str = DEFAULT_DATABASE_URL
    # PostgreSQL cancels a statement of ours that runs longer (0: no limit): a hop stuck behind a lock ends politely
    # instead of holding a web thread, and a runaway query cannot hold a worker for good. Migrations have none.
    database_statement_timeout_ms: int = 30_000
    redis_url: str | None = None
    secret_key: str = DEV_SECRET_KEY
    log_level: str = "INFO"

    mfi_id: str = "demo-mfi"
    mfi_name: str = "Demo MFI"
    currency: str = "KES"
    default_locale: str = "en"
    default_region: str = "KE"
    timezone: str = "Africa/Nairobi"

    ussd_session_ttl_seconds: int = 300
    draft_ttl_days: int = 7
    pin_max_attempts: int = 3
    pin_lock_minutes: int = 30
    activation_code_ttl_hours: int = 24
    balance_cache_seconds: int = 60
    rate_limit_per_phone_per_minute: int = 60
    # Main-menu entries switched off, comma-separated (names: conversations.menus.MAIN_MENU).
    menu_off: str = ""
    rate_limit_per_key_per_minute: int = 120
    # Failed API keys (unknown, malformed, revoked, wrong secret) one client address may present per minute.
    bad_api_keys_per_address_per_minute: int = 20
    # Reverse proxies in front of the web process that set X-Forwarded-For/-Proto/-Host (0: none, trust no header).
    proxy_hops: int = 0

    at_username: str = ""
    at_api_key: str = ""
    at_sender_id: str = ""
    at_webhook_token: str = ""
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from_number: str = ""
    twilio_public_url: str = ""
    telegram_bot_token: str = ""
    telegram_webhook_secret: str = ""
    telegram_api_url: str = ""  # empty: Telegram's own Bot API; set for a self-hosted Bot API server
    outbound_channel: str = "console"
    send_timeout_seconds: float = 10.0
    sms_per_second: float = 10.0
    sms_max_segments: int = 2  # the longest dialogue reply by SMS, in segments (each is billed); longer ones are paged

    core_banking: str = "ledger"
    fineract_url: str = ""
    fineract_tenant: str = "default"
    fineract_username: str = ""
    fineract_password: str = ""
    fineract_timeout_seconds: float = 3.0
    fineract_breaker_failures: int = 5  # failed calls in a row after which no process calls Fineract ...
    fineract_breaker_seconds: int = 30  # ... for this long (its callers get the last-known balance at once)

    portal_url: str = ""
    portal_secret: str = ""
    portal_secret_previous: str = ""
    feed_max_attempts: int = 12
    suppression_k: int = 5

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def menu_off_names(self) -> tuple[str, ...]:
        return comma_names(self.menu_off)

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default `os.environ`); each field is the upper-cased variable name."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for spec in fields(cls):
            raw = env.get(spec.name.upper())
            if raw is None or raw == "":
                continue
            values[spec.name] = _cast(spec.name, raw, spec.default)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse unsafe combinations; in production, refuse every development default."""
        if self.app_env not in ("development", "test", "production"):
            raise SettingsError(f"APP_ENV must be development, test or production, not {self.app_env!r}")
        if self.core_banking not in ("ledger", "fineract"):
            raise SettingsError(f"CORE_BANKING must be ledger or fineract, not {self.core_banking!r}")
        if self.core_banking == "fineract" and not self.fineract_url:
            raise SettingsError("CORE_BANKING=fineract needs FINERACT_URL")
        if not 0 <= self.proxy_hops <= 5:
            raise SettingsError(f"PROXY_HOPS must be 0 to 5, not {self.proxy_hops}")
        if self.bad_api_keys_per_address_per_minute < 1:
            raise SettingsError("BAD_API_KEYS_PER_ADDRESS_PER_MINUTE must be at least 1")
        if self.suppression_k < 2:
            raise SettingsError(
                f"SUPPRESSION_K must be at least 2, not {self.suppression_k}: below that no cell is withheld, and "
                "a cell of one client shows that client's band"
            )
        if self.portal_url and not self.portal_secret:
            raise SettingsError("PORTAL_URL is set without PORTAL_SECRET: the feed would be signed with an empty key")
        if self.database_statement_timeout_ms < 0:
            raise SettingsError("DATABASE_STATEMENT_TIMEOUT_MS must be 0 (no limit) or more")
        if self.fineract_breaker_failures < 1 or self.fineract_breaker_seconds < 1:
            raise SettingsError("FINERACT_BREAKER_FAILURES and FINERACT_BREAKER_SECONDS must be at least 1")
        if not 1 <= self.sms_max_segments <= 10:
            raise SettingsError(f"SMS_MAX_SEGMENTS must be 1 to 10, not {self.sms_max_segments}")
        from conversations.menus import switched_off  # the menu's names live with the menu

        try:
            switched_off(self.menu_off_names)
        except ValueError as exc:
            raise SettingsError(f"MENU_OFF has {exc}") from None
        if not self.is_production:
            return
        problems = []
        if self.uses_sqlite:
            problems.append("DATABASE_URL is SQLite (set a PostgreSQL URL)")
        if not self.redis_url:
            problems.append("REDIS_URL is unset (the in-process fakeredis is for development only)")
        if self.secret_key == DEV_SECRET_KEY or not self.secret_key.strip():
            problems.append("SECRET_KEY is unset")
        if problems:
            raise SettingsError("refusing to start with APP_ENV=production: " + "; ".join(problems))


def comma_names(raw: str) -> tuple[str, ...]:
    """'Balances, statement ,' -> ('balances', 'statement')."""
    return tuple(name for name in (part.strip().lower() for part in raw.split(",")) if name)


def _cast(name: str, raw: str, default: object) -> object:
    variable = name.upper()
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{variable} has value {raw!r}: not a valid boolean")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{variable} has value {raw!r}: not a whole number") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{variable} has value {raw!r}: not a number") from None
    return raw.strip()
