"""Fixtures for hostile-input tests: the app with every provider's webhook secret configured (so verification is
exercised) and a rate limit high enough that random floods still reach the dialogue."""

from __future__ import annotations

import pytest

from settings import Settings
from tests.conftest import TEST_REDIS_URL

TELEGRAM_SECRET = "hostile-telegram-secret"
TWILIO_TOKEN = "hostile-twilio-token"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        app_env="test",
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        log_level="WARNING",
        rate_limit_per_phone_per_minute=1_000_000,
        twilio_auth_token=TWILIO_TOKEN,
        telegram_webhook_secret=TELEGRAM_SECRET,
    )
