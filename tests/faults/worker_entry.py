"""A real forking RQ worker for fault tests, run as `python -m tests.faults.worker_entry` in a subprocess.

It is the production worker loop on the test's private database and Redis, except that Telegram points at the
test's loopback fake (the Bot API base URL is not a setting), so the test can see what was sent.
"""

from __future__ import annotations

import os

from rq import Worker

import bootstrap
from gateway.channels import ChannelConfig, build_channels
from settings import Settings


def main() -> None:
    settings = Settings(
        app_env="test",
        database_url=os.environ["FAULT_DATABASE_URL"],
        redis_url=os.environ["FAULT_REDIS_URL"],
        sms_per_second=1000.0,
    )
    services = bootstrap.build(settings)
    config = ChannelConfig(telegram_bot_token="123456:TEST", telegram_base_url=os.environ["FAULT_TELEGRAM_URL"])
    services._channels = build_channels(config)
    burst = os.environ.get("FAULT_BURST") == "1"
    Worker([services.queue], connection=services.redis).work(burst=burst, with_scheduler=False)


if __name__ == "__main__":
    main()
