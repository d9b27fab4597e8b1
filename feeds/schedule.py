"""When the feed is rebuilt: daily at 02:00 UTC, and ten minutes after a burst of survey submissions.

Both need the RQ scheduler (`rq worker --with-scheduler`). The daily job re-schedules itself after it runs; a
worker calls `ensure_daily` at start-up (`impact-connect feed schedule`) so the chain exists after a deploy or a
Redis flush; the job id carries the date, so calling it again never adds a second run for the same day.
On the embedded inline queue there is no scheduler: both functions do nothing and say so in their result.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from rq.job import Job

from bootstrap import Services
from db import utcnow

DAILY_AT = time(2, 0, tzinfo=UTC)
DEBOUNCE = timedelta(minutes=10)
DEBOUNCE_KEY = "ic:feed:rebuild-pending"


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
    job_id = f"ic-feed-daily-{when:%Y%m%d}"
    if not Job.exists(job_id, connection=services.redis):
        services.queue.enqueue_at(when, jobs.daily, job_id=job_id)
    return when


def survey_changed(services: Services) -> bool:
    """Debounced rebuild after survey submissions: the first change in a 10-minute window schedules one push job
    for the end of the window; later changes in the window do nothing. Returns True when a job was scheduled.
    Inline (no Redis, no scheduler): nothing is scheduled; the daily run or `feed push` picks the change up."""
    if services.jobs_inline:
        return False
    if not services.redis.set(DEBOUNCE_KEY, "1", nx=True, ex=int(DEBOUNCE.total_seconds())):
        return False
    from feeds import jobs

    services.queue.enqueue_in(DEBOUNCE, jobs.push)
    return True
