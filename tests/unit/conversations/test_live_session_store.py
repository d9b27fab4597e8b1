"""The live-session store's lock: a hop saves only while it still holds its session, and a second hop waits."""

from __future__ import annotations

import fakeredis
import pytest
import redis

from conversations.repository import LOCK_PREFIX, STATE_PREFIX, LiveSession, LiveSessionStore


@pytest.fixture
def store() -> LiveSessionStore:
    return LiveSessionStore(fakeredis.FakeRedis(), ttl_seconds=300)


def test_a_hop_saves_its_state_and_frees_the_session(store):
    held = store.acquire("s1", rate_key="rate:x")
    assert held.locked and held.live is None and held.rate_count == 1
    held.keep(LiveSession(state={"node": "menu"}, consumed=3))
    store.release(held)
    assert store.load("s1").state == {"node": "menu"}
    assert store.redis.get(LOCK_PREFIX + "s1") is None


def test_a_hop_that_outlived_its_lock_does_not_overwrite_the_newer_state(store):
    slow = store.acquire("s1")
    store.redis.delete(LOCK_PREFIX + "s1")  # the lock expired while the slow hop worked
    fast = store.acquire("s1")
    assert fast.locked
    fast.keep(LiveSession(state={"node": "newer"}))
    store.release(fast)
    slow.keep(LiveSession(state={"node": "older"}))
    store.release(slow)
    assert store.load("s1").state == {"node": "newer"}
    assert store.redis.get(STATE_PREFIX + "s1") is not None


def test_a_second_hop_of_a_busy_session_gives_up_after_waiting(store):
    store.LOCK_WAIT_SECONDS = 0.2
    first = store.acquire("s1")
    second = store.acquire("s1")
    assert first.locked and not second.locked
    with pytest.raises(redis.exceptions.LockError):
        store.wait(second)
    store.release(first)
    store.wait(second)
    assert second.locked


def test_hops_go_on_after_redis_forgot_its_scripts(store):
    held = store.acquire("s1")
    held.keep(LiveSession(state={"node": "menu"}))
    store.release(held)
    store.redis.script_flush()  # a Redis restart, a failover to a replica, or SCRIPT FLUSH

    again = store.acquire("s1")
    assert again.locked and again.live.state == {"node": "menu"}
    again.keep(LiveSession(state={"node": "question"}))
    store.release(again)
    assert store.load("s1").state == {"node": "question"}
    assert store.redis.get(LOCK_PREFIX + "s1") is None
