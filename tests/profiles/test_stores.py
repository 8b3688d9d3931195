import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipecat_speculative.profiles import (
    ProfileStore,
    RedisProfileStore,
    SQLiteProfileStore,
    TurnTakingProfile,
    hash_user_id,
)
from tests.profiles.conftest import free_loopback_port

SALT = "test-salt-0123456789abcdef"
PHONE = "+15550100"
REPO = Path(__file__).resolve().parents[2]


def profile(delay: float = 0.3, turns: int = 12) -> TurnTakingProfile:
    return TurnTakingProfile.bounded(
        speculation_delay_secs=delay,
        pauses=[(0.6, True), (0.9, False)],
        recent_outcomes=[True, False, False],
        readiness_secs=0.7,
        readiness_measurements=3,
        turns_seen=turns,
        sessions_seen=1,
        updated_at=1_800_000_000.0,
    )


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


async def fresh_redis_client(url: str):
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    await client.flushdb()
    return client


@pytest.fixture
async def redis_client(redis_server):
    client = await fresh_redis_client(redis_server)
    yield client
    await client.aclose()


@pytest.fixture(params=["sqlite", "redis"])
async def store(request, tmp_path) -> ProfileStore:
    if request.param == "sqlite":
        yield SQLiteProfileStore(tmp_path / "profiles.db", salt=SALT)
    else:
        client = await fresh_redis_client(request.getfixturevalue("redis_server"))
        yield RedisProfileStore(client, salt=SALT)
        await client.aclose()


# ---------------------------------------------------------------------- both stores


async def test_put_get_round_trip_and_replace(store):
    assert await store.get(PHONE) is None
    await store.put(PHONE, profile(0.3))
    assert await store.get(PHONE) == profile(0.3)
    await store.put(PHONE, profile(0.5, turns=30))
    assert await store.get(PHONE) == profile(0.5, turns=30)
    assert await store.get("+15550199") is None


async def test_delete_on_request(store):
    await store.put(PHONE, profile())
    await store.put("other", profile(0.1))
    assert await store.delete(PHONE) is True
    assert await store.get(PHONE) is None
    assert await store.delete(PHONE) is False
    assert await store.get("other") == profile(0.1)


async def test_lookup_ignores_surrounding_whitespace(store):
    await store.put(PHONE, profile())
    assert await store.get(f"  {PHONE}\n") == profile()


async def test_a_different_salt_sees_nothing(store):
    await store.put(PHONE, profile())
    if isinstance(store, SQLiteProfileStore):
        other = SQLiteProfileStore(store.path, salt="another-salt-0123456789")
    else:
        other = RedisProfileStore(store._redis, salt="x" * 20)
    assert await other.get(PHONE) is None


# ---------------------------------------------------------------------- hashing


def test_hashing_is_keyed_and_stable():
    key = hash_user_id(PHONE, SALT)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == hash_user_id(PHONE, SALT.encode())
    assert key != hash_user_id(PHONE, SALT + "x")
    assert key != hash_user_id("+15550101", SALT)
    assert PHONE not in key and "5550100" not in key


@pytest.mark.parametrize("salt", ["", "short", b"123456789012345"])
def test_a_weak_salt_is_refused(salt, tmp_path):
    with pytest.raises(ValueError, match="at least 16 bytes"):
        hash_user_id(PHONE, salt)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        SQLiteProfileStore(tmp_path / "p.db", salt=salt)


def test_an_empty_user_id_is_refused():
    with pytest.raises(ValueError, match="empty user id"):
        hash_user_id("  ", SALT)


# ---------------------------------------------------------------------- SQLite


async def test_sqlite_never_stores_the_raw_id(tmp_path):
    store = SQLiteProfileStore(tmp_path / "profiles.db", salt=SALT)
    await store.put(PHONE, profile())
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"5550100" not in raw
    assert store.key_for(PHONE).encode() in raw


async def test_sqlite_ttl_expiry(tmp_path):
    clock = FakeClock()
    store = SQLiteProfileStore(tmp_path / "p.db", salt=SALT, ttl_secs=100, clock=clock)
    await store.put(PHONE, profile())
    await store.put("other", profile(0.1))
    clock.now += 60
    await store.put("other", profile(0.2))  # a put restarts the time to live
    clock.now += 50
    assert await store.get(PHONE) is None  # invisible at once, before any purge
    assert await store.get("other") == profile(0.2)
    assert await store.expire() == 1
    assert await store.delete(PHONE) is False  # really gone
    clock.now += 100
    assert await store.expire() == 1
    assert await store.get("other") is None


async def test_sqlite_put_purges_expired_rows_now_and_then(tmp_path):
    clock = FakeClock()
    store = SQLiteProfileStore(tmp_path / "p.db", salt=SALT, ttl_secs=10, clock=clock)
    await store.put("a", profile())
    clock.now += 3600
    await store.put("b", profile())
    assert await store.delete("a") is False


async def test_sqlite_an_unreadable_row_reads_as_none(tmp_path):
    import sqlite3

    store = SQLiteProfileStore(tmp_path / "p.db", salt=SALT)
    await store.put(PHONE, profile())
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE turn_taking_profiles SET profile = '{\"schema_version\": 99}'")
    db.close()
    assert await store.get(PHONE) is None


SQLITE_WORKER = """
import asyncio, sys
from pipecat_speculative.profiles import SQLiteProfileStore, TurnTakingProfile

async def main(path, worker):
    store = SQLiteProfileStore(path, salt={salt!r})
    for i in range(25):
        p = TurnTakingProfile.bounded(speculation_delay_secs=worker / 10, turns_seen=i)
        await store.put(f"user-{{worker}}-{{i}}", p)
        await store.put("shared", p)
        assert await store.get(f"user-{{worker}}-{{i}}") == p

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def run_workers(script: str, *args_per_worker: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in args_per_worker
    ]
    for p in procs:
        _, err = p.communicate(timeout=90)
        assert p.returncode == 0, err[-3000:]


@pytest.mark.slow
async def test_sqlite_is_safe_across_processes(tmp_path):
    path = tmp_path / "shared.db"
    script = SQLITE_WORKER.format(salt=SALT)
    await asyncio.to_thread(run_workers, script, *[[str(path), str(w)] for w in range(4)])
    store = SQLiteProfileStore(path, salt=SALT)
    for worker in range(4):
        for i in range(25):
            got = await store.get(f"user-{worker}-{i}")
            assert got is not None and got.turns_seen == i
            assert got.speculation_delay_secs == worker / 10
    shared = await store.get("shared")
    assert shared is not None and shared.turns_seen == 24  # some worker's last put wins


# ---------------------------------------------------------------------- Redis


async def test_redis_keys_are_namespaced_hashes_and_never_the_raw_id(redis_client):
    store = RedisProfileStore(redis_client, salt=SALT, namespace="bot-a")
    await store.put(PHONE, profile())
    keys = await redis_client.keys("*")
    assert keys == [f"bot-a:profile:{store.key_for(PHONE)}".encode()]
    assert b"5550100" not in keys[0] + await redis_client.get(keys[0])


async def test_redis_namespaces_keep_bots_apart(redis_client):
    a = RedisProfileStore(redis_client, salt=SALT, namespace="bot-a")
    b = RedisProfileStore(redis_client, salt=SALT, namespace="bot-b")
    await a.put(PHONE, profile(0.3))
    assert await b.get(PHONE) is None
    await b.put(PHONE, profile(0.6))
    assert (await a.get(PHONE)).speculation_delay_secs == 0.3
    assert await a.delete(PHONE) is True
    assert (await b.get(PHONE)).speculation_delay_secs == 0.6


async def test_redis_ttl_is_a_real_redis_expiry(redis_client):
    store = RedisProfileStore(redis_client, salt=SALT, ttl_secs=0.4)
    await store.put(PHONE, profile())
    ttl_ms = await redis_client.pttl(store.redis_key(PHONE))
    assert 0 < ttl_ms <= 400
    assert await store.get(PHONE) == profile()
    assert await store.expire() == 0  # nothing for the store to do
    await asyncio.sleep(0.6)
    assert await store.get(PHONE) is None
    assert await redis_client.exists(store.redis_key(PHONE)) == 0


async def test_redis_an_unreadable_value_reads_as_none(redis_client):
    store = RedisProfileStore(redis_client, salt=SALT)
    await redis_client.set(store.redis_key(PHONE), b'{"schema_version": 99}')
    assert await store.get(PHONE) is None


async def test_redis_store_from_url_owns_and_closes_its_client(redis_server):
    store = RedisProfileStore(url=redis_server, salt=SALT, namespace="url")
    try:
        await store.put(PHONE, profile())
        assert await store.get(PHONE) == profile()
        assert await store.delete(PHONE)
    finally:
        await store.close()


def test_redis_store_needs_exactly_one_connection():
    with pytest.raises(ValueError, match="either"):
        RedisProfileStore(salt=SALT)


REDIS_WORKER = """
import asyncio, sys
from pipecat_speculative.profiles import RedisProfileStore, TurnTakingProfile

async def main(url, worker):
    store = RedisProfileStore(url=url, salt={salt!r}, namespace="fleet")
    try:
        if worker == 0:
            p = TurnTakingProfile.bounded(speculation_delay_secs=0.42, turns_seen=9)
            await store.put({phone!r}, p)
        else:
            for _ in range(200):
                p = await store.get({phone!r})
                if p is not None:
                    break
                await asyncio.sleep(0.05)
            assert p is not None and p.speculation_delay_secs == 0.42, p
            await store.put(f"seen-by-{{worker}}", p)
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


@pytest.mark.slow
async def test_redis_a_fleet_of_processes_shares_profiles(redis_server, redis_client):
    script = REDIS_WORKER.format(salt=SALT, phone=PHONE)
    await asyncio.to_thread(run_workers, script, *[[redis_server, str(w)] for w in range(3)])
    store = RedisProfileStore(redis_client, salt=SALT, namespace="fleet")
    assert (await store.get(PHONE)).turns_seen == 9
    for worker in (1, 2):
        assert (await store.get(f"seen-by-{worker}")).speculation_delay_secs == 0.42


async def test_redis_down_reads_as_a_cold_start_but_a_deletion_fails_loudly():
    from redis.exceptions import RedisError

    port = free_loopback_port()  # nothing listens there
    store = RedisProfileStore(url=f"redis://127.0.0.1:{port}/0", salt=SALT)
    try:
        assert await store.get(PHONE) is None
        with pytest.raises(RedisError):
            await store.delete(PHONE)
    finally:
        await store.close()


async def test_sqlite_unusable_file_reads_as_a_cold_start(tmp_path):
    store = SQLiteProfileStore(tmp_path / "p.db", salt=SALT)
    store.path.unlink()
    store.path.mkdir()  # the file is now a directory: every query fails
    assert await store.get(PHONE) is None
