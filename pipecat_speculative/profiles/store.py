"""Where profiles live: one small interface, an embedded SQLite default and Redis for fleets.

Every store keys a profile by a salted SHA-256 (HMAC) of the user id the bot has (a Daily
participant id, a phone number, an app user id), never by the id itself: a phone number never
lands in the store, and without the salt the keys cannot be matched to people by hashing every
number (a phone number space is small enough to hash whole in minutes, so an unsalted hash would
not protect it). Keep the salt secret and stable: a new salt orphans every profile (they expire).

Profiles expire ``ttl_secs`` after their last ``put`` (a user who stopped calling is forgotten),
and :meth:`ProfileStore.delete` removes one on request. A stored profile that cannot be read (a
newer schema written by a newer process during a rolling deploy, a corrupt value) reads as
``None`` with a warning: the call starts cold rather than failing. So does a ``get`` while the
backend is down (a locked or missing disk, Redis unreachable): a profile only makes a call
better, so its absence must never stop one. ``put`` and ``delete`` raise instead: a deletion
request must not fail silently, and a lost update is the caller's to log.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from pipecat_speculative.profiles.profile import ProfileError, TurnTakingProfile

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_TTL_SECS",
    "ProfileStore",
    "RedisProfileStore",
    "SQLiteProfileStore",
    "hash_user_id",
]

DEFAULT_TTL_SECS = 90 * 24 * 3600.0
"""Profiles are forgotten 90 days after the user's last session."""

_MIN_SALT_BYTES = 16


def hash_user_id(user_id: str, salt: bytes | str) -> str:
    """The key a profile is stored under: HMAC-SHA-256 of the user id with a secret salt.

    Args:
        user_id: The id the bot has for the user. Surrounding whitespace is ignored, so
            ``" +15550100"`` and ``"+15550100"`` are one user; normalize phone numbers (E.164)
            before calling, since the hash cannot.
        salt: A secret of at least 16 bytes (e.g. ``secrets.token_hex(16)`` kept in the
            deployment's secrets).

    Returns:
        64 hex characters.
    """
    salt_bytes = salt.encode() if isinstance(salt, str) else bytes(salt)
    if len(salt_bytes) < _MIN_SALT_BYTES:
        raise ValueError(
            f"the salt must be a secret of at least {_MIN_SALT_BYTES} bytes: a short or "
            "guessable one lets anyone match stored keys to phone numbers by hashing them all"
        )
    user_id = user_id.strip()
    if not user_id:
        raise ValueError("an empty user id cannot key a profile")
    return hmac.new(salt_bytes, user_id.encode(), hashlib.sha256).hexdigest()


def _decode(raw: str | bytes | None, where: str) -> TurnTakingProfile | None:
    if raw is None:
        return None
    try:
        return TurnTakingProfile.from_json(raw)
    except ProfileError as e:
        logger.warning(f"profile {where} is unreadable, starting cold: {e}")
        return None


class ProfileStore(ABC):
    """Stores one :class:`TurnTakingProfile` per user, keyed by a salted hash of the user id.

    The methods are async because a bot calls them from its event loop (at session start and
    end); a store must not block that loop while it waits for a disk or a network.
    """

    def __init__(self, *, salt: bytes | str, ttl_secs: float = DEFAULT_TTL_SECS):
        """Initialize the store.

        Args:
            salt: Secret salt for :func:`hash_user_id`.
            ttl_secs: A profile is forgotten this long after its last ``put``.
        """
        if ttl_secs <= 0:
            raise ValueError(f"ttl_secs must be > 0, got {ttl_secs}")
        hash_user_id("probe", salt)  # refuse a weak salt now, not at the first call
        self._salt = salt
        self._ttl = ttl_secs

    @property
    def ttl_secs(self) -> float:
        """How long a profile lives after its last ``put``."""
        return self._ttl

    def key_for(self, user_id: str) -> str:
        """The hashed key the user's profile is stored under."""
        return hash_user_id(user_id, self._salt)

    @abstractmethod
    async def get(self, user_id: str) -> TurnTakingProfile | None:
        """The user's profile, or None if there is none, it expired, or it is unreadable."""

    @abstractmethod
    async def put(self, user_id: str, profile: TurnTakingProfile):
        """Store (replace) the user's profile and restart its time to live."""

    @abstractmethod
    async def delete(self, user_id: str) -> bool:
        """Delete the user's profile (a deletion request). True if there was one."""

    @abstractmethod
    async def expire(self) -> int:
        """Remove every expired profile now; returns how many were removed."""

    async def close(self):  # noqa: B027 - an optional hook, not abstract
        """Release connections (nothing by default)."""


class SQLiteProfileStore(ProfileStore):
    """Profiles in one SQLite file: the embedded default, safe across processes on one machine.

    Each call opens its own connection in a worker thread (the event loop never waits on the
    disk), in WAL mode with a busy timeout, so several bot processes on one host can share the
    file: readers never block the writer, and concurrent writers queue rather than fail. The
    last ``put`` for a user wins. Expired rows are invisible at once and removed by
    :meth:`expire` (also run, at most once an hour, by ``put``).
    """

    _PURGE_EVERY_SECS = 3600.0

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        salt: bytes | str,
        ttl_secs: float = DEFAULT_TTL_SECS,
        busy_timeout_secs: float = 10.0,
        clock: Callable[[], float] = time.time,
    ):
        """Initialize the store, creating the file and its table if needed.

        Args:
            path: The database file.
            salt: Secret salt for :func:`hash_user_id`.
            ttl_secs: A profile is forgotten this long after its last ``put``.
            busy_timeout_secs: How long a write waits for another process's write.
            clock: Wall-clock seconds (expiry must hold across restarts); injectable for tests.
        """
        super().__init__(salt=salt, ttl_secs=ttl_secs)
        self._path = Path(path)
        self._busy_timeout = busy_timeout_secs
        self._clock = clock
        self._last_purge = clock()
        self._change(
            "CREATE TABLE IF NOT EXISTS turn_taking_profiles ("
            " key TEXT PRIMARY KEY, profile TEXT NOT NULL, expires_at REAL NOT NULL)"
        )
        self._change(
            "CREATE INDEX IF NOT EXISTS turn_taking_profiles_expiry"
            " ON turn_taking_profiles (expires_at)"
        )

    def __str__(self):
        return f"SQLiteProfileStore({self._path})"

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        return db

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        db = self._connect()
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def _change(self, sql: str, args: tuple = ()) -> int:
        """Run one write in its own transaction; returns the rows it changed."""
        db = self._connect()
        try:
            with db:
                return db.execute(sql, args).rowcount
        finally:
            db.close()

    async def get(self, user_id: str) -> TurnTakingProfile | None:
        """The user's profile, if stored, unexpired and readable."""
        key = self.key_for(user_id)
        try:
            rows = await asyncio.to_thread(
                self._query,
                "SELECT profile FROM turn_taking_profiles WHERE key = ? AND expires_at > ?",
                (key, self._clock()),
            )
        except sqlite3.Error as e:
            logger.warning(f"{self}: profile lookup failed, starting cold: {e}")
            return None
        raw = rows[0][0] if rows else None
        return _decode(raw, f"{key[:12]}… in {self}")

    async def put(self, user_id: str, profile: TurnTakingProfile):
        """Store the user's profile; it expires ``ttl_secs`` from now."""
        now = self._clock()
        await asyncio.to_thread(
            self._change,
            "INSERT INTO turn_taking_profiles (key, profile, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET"
            " profile = excluded.profile, expires_at = excluded.expires_at",
            (self.key_for(user_id), profile.to_json(), now + self._ttl),
        )
        if now - self._last_purge >= self._PURGE_EVERY_SECS:
            await self.expire()

    async def delete(self, user_id: str) -> bool:
        """Delete the user's profile. True if one was stored (expired or not)."""
        removed = await asyncio.to_thread(
            self._change, "DELETE FROM turn_taking_profiles WHERE key = ?", (self.key_for(user_id),)
        )
        return removed > 0

    async def expire(self) -> int:
        """Remove every expired profile; returns how many."""
        self._last_purge = now = self._clock()
        removed = await asyncio.to_thread(
            self._change, "DELETE FROM turn_taking_profiles WHERE expires_at <= ?", (now,)
        )
        if removed:
            logger.debug(f"{self}: {removed} expired profiles removed")
        return removed


class RedisProfileStore(ProfileStore):
    """Profiles in Redis, for a fleet of bot processes serving the same users.

    Each profile is one string key ``{namespace}:profile:{hashed id}`` set with an expiry, so
    Redis itself forgets a profile ``ttl_secs`` after its last ``put`` (:meth:`expire` has nothing
    to do). The namespace keeps several bots or environments apart on one Redis. Needs the
    ``redis`` extra (``pip install "pipecat-speculative[redis]"``).
    """

    def __init__(
        self,
        client: Redis | None = None,
        *,
        url: str | None = None,
        salt: bytes | str,
        namespace: str = "pipecat-speculative",
        ttl_secs: float = DEFAULT_TTL_SECS,
    ):
        """Initialize the store.

        Args:
            client: A ``redis.asyncio.Redis`` client to use (and not close); or give ``url``.
            url: ``redis://host:port/db`` to open a client this store owns and closes.
            salt: Secret salt for :func:`hash_user_id`.
            namespace: Key prefix.
            ttl_secs: A profile is forgotten this long after its last ``put`` (millisecond
                precision).
        """
        super().__init__(salt=salt, ttl_secs=ttl_secs)
        if (client is None) == (url is None):
            raise ValueError("give either a redis.asyncio client or a url")
        if not namespace or any(c.isspace() for c in namespace):
            raise ValueError(f"namespace must be non-empty without spaces, got {namespace!r}")
        if client is None:
            try:
                from redis.asyncio import Redis
            except ImportError as e:
                raise ImportError(
                    'RedisProfileStore needs redis-py: pip install "pipecat-speculative[redis]"'
                ) from e
            client = Redis.from_url(url)
            self._owns_client = True
        else:
            self._owns_client = False
        self._redis = client
        self._namespace = namespace

    def __str__(self):
        return f"RedisProfileStore({self._namespace})"

    @property
    def namespace(self) -> str:
        """The key prefix."""
        return self._namespace

    def redis_key(self, user_id: str) -> str:
        """The Redis key of the user's profile."""
        return f"{self._namespace}:profile:{self.key_for(user_id)}"

    async def get(self, user_id: str) -> TurnTakingProfile | None:
        """The user's profile, if stored, unexpired and readable."""
        from redis.exceptions import RedisError

        key = self.redis_key(user_id)
        try:
            raw = await self._redis.get(key)
        except (RedisError, OSError) as e:
            logger.warning(f"{self}: profile lookup failed, starting cold: {e}")
            return None
        return _decode(raw, f"{key[:40]}…")

    async def put(self, user_id: str, profile: TurnTakingProfile):
        """Store the user's profile; Redis expires it ``ttl_secs`` from now."""
        await self._redis.set(
            self.redis_key(user_id), profile.to_json(), px=max(1, int(self._ttl * 1000))
        )

    async def delete(self, user_id: str) -> bool:
        """Delete the user's profile. True if one was stored."""
        return bool(await self._redis.delete(self.redis_key(user_id)))

    async def expire(self) -> int:
        """Nothing to do: Redis removes expired keys itself."""
        return 0

    async def close(self):
        """Close the client if this store opened it."""
        if self._owns_client:
            await self._redis.aclose()
