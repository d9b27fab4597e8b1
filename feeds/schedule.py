"""When the feed is rebuilt: daily at 02:00 UTC, and ten minutes after a burst of survey submissions; and when the
facts of the clients whose surveys changed are recomputed: half a minute after a change, so that a reader of the
aggregates (the pull API, /impact) rarely has marked clients left to catch up on (`feeds/stale.py`).

Both need the RQ scheduler (`rq worker --with-scheduler`). The daily job re-schedules itself after it runs; a
worker calls `ensure_daily` at start-up (`impact-connect feed schedule`) so the chain exists after a deploy or a
Redis flush; the job id carries the date, so calling it again never adds a second run for the same day.
On the embedded inline queue there is no scheduler: both functions do nothing and say so in their result.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from bootstrap import Services
from db import utcnow

DAILY_AT = time(2, 0, tzinfo=UTC)
DEBOUNCE = timedelta(minutes=10)
DEBOUNCE_KEY = "ic:feed:rebuild-pending"
CATCH_UP_AFTER = timedelta(seconds=30)
CATCH_UP_KEY = "ic:feed:catch-up-pending"


def next_daily_run(now: datetime) -> datetime:
    """The first 02:00 UTC strictly after `now`."""
    today = datetime.combine(now.astimezone(UTC).date(), DAILY_AT)
    return today if today > now else today + timedelta(days=1)


def ensure_daily(services: Services, *, now: datetime | None = None) -> datetime | None:
    """Schedule the next daily feed run unless it is already scheduled; returns its time (None when inline)."""
    if services.jobs_inline:
        return None
    from feeds import jobs

    when = next_daily_run(now or utcnow())
    services.schedule_once(when, jobs.daily, job_id=f"ic-feed-daily-{when:%Y%m%d}")
    return when


def survey_changed(services: Services) -> bool:
    """Debounced rebuild after survey submissions: the first change in a 10-minute window schedules one push job
    for the end of the window; later changes in the window do nothing. Returns True when a push was scheduled.
    The facts' catch-up is debounced the same way over half a minute. Both windows are claimed in one Redis round
    trip (this runs on every survey a USSD hop submits). Inline (no Redis, no scheduler): nothing is scheduled;
    readers catch the facts up, and the daily run or `feed push` picks the change up."""
    if services.jobs_inline:
        return False
    from feeds import jobs

    windows: tuple[tuple[str, timedelta, Callable[[], Any]], ...] = (
        (CATCH_UP_KEY, CATCH_UP_AFTER, jobs.catch_up_facts),
        (DEBOUNCE_KEY, DEBOUNCE, jobs.push),
    )
    pipe = services.redis.pipeline(transaction=False)
    for key, window, _job in windows:
        pipe.set(key, "1", nx=True, ex=int(window.total_seconds()))
    claimed = pipe.execute()
    for (_key, window, job), first in zip(windows, claimed, strict=True):
        if first:
            services.queue.enqueue_in(window, job)
    return bool(claimed[-1])
