"""The RQ worker process (`impact-connect worker`): built-in scheduler on, Heroku-style graceful shutdown.

A thin wrapper over `rq worker --with-scheduler` so the worker gets the same settings, logging and composition root
as the web process, and schedules the daily feed run when it starts.
"""

from __future__ import annotations

import click
from rq.worker import HerokuWorker

import bootstrap
from feeds.schedule import ensure_daily
from gateway.jobs import schedule_sweep
from logs import configure_logging
from settings import Settings


@click.command("worker", help="Run an RQ worker with the scheduler (needs REDIS_URL).")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker_command(burst: bool) -> None:
    settings = Settings.from_env()
    if not settings.redis_url:
        raise click.ClickException("REDIS_URL is not set: without Redis, jobs run inline in the web process")
    configure_logging(settings.log_level)
    services = bootstrap.build(settings)
    ensure_daily(services)  # the portal feed's daily run; a no-op when it is already scheduled
    schedule_sweep(services)  # outbox rows a Redis failure left without a send job, every minute
    worker = HerokuWorker([services.queue], connection=services.redis)
    worker.work(with_scheduler=True, burst=burst, logging_level=settings.log_level)
