"""A user's turn-taking profile: what the turn strategy learned about how this person talks.

A returning user otherwise starts every call cold: the adaptive debounce needs several outcomes
before it moves, and the first turns of every call pay for it. A profile carries what converged
(the speculation delay, the pauses it was learned from, the answer readiness, the pauses that
called for commit patience) from one session to the next.

Rules a profile keeps, and why:

- **Bounded**: every sequence has a fixed maximum length and every number a range, so a profile
  is a few kilobytes at most however many sessions it has seen, and a corrupted or hostile
  stored value cannot blow up a bot (the JSON is refused before parsing past ``MAX_JSON_BYTES``).
- **No text**: a profile holds numbers and booleans only. There is no string field, so no
  transcript, name or phone number can land in one; the store keys it by a salted hash.
- **Versioned**: ``schema_version`` says how to read it. A newer version is refused (an older
  process cannot know what a newer field means, and must not guess); an older one is migrated
  when a migration exists, refused with the reason otherwise.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_OUTCOMES",
    "MAX_PATIENCE_PAUSES",
    "MAX_PAUSES",
    "PatiencePause",
    "PauseSample",
    "ProfileError",
    "ProfileVersionError",
    "SCHEMA_VERSION",
    "TurnTakingProfile",
]

SCHEMA_VERSION = 1
"""The version this code writes. Bump it (and add a migration) whenever a field changes meaning."""

MAX_PAUSES = 64
"""Pauses kept: more than the debounce's default window (40), so a wider window still fills."""

MAX_OUTCOMES = 64
"""Speculation outcomes kept (the debounce's reported window is 20 by default)."""

MAX_PATIENCE_PAUSES = 16
"""Resumed pauses kept for commit patience (its own memory holds 16)."""

MAX_JSON_BYTES = 16_384
"""Serialized profiles larger than this are refused unread (a full one is under 2 KB)."""

MAX_PAUSE_SECS = 60.0
"""A pause longer than a minute is not turn-taking any more; longer ones are clamped."""

MAX_DELAY_SECS = 10.0
MAX_READINESS_SECS = 30.0
MAX_PATIENCE_SECS = 10.0
MAX_COUNT = 10**9
MAX_TURNS_AGO = 1_000

_PRECISION = 3
"""Seconds are stored to the millisecond: finer is noise, and it keeps the JSON small."""


class ProfileError(ValueError):
    """A profile is malformed, out of bounds, or cannot be read."""


class ProfileVersionError(ProfileError):
    """A profile's schema version cannot be read by this code (newer, or older without migration)."""

    def __init__(self, version: object, reason: str):
        super().__init__(reason)
        self.version = version


@dataclass(frozen=True)
class PauseSample:
    """A pause the user made, and whether it ended in resumption or in the end of the turn.

    Parameters:
        secs: Silence from the VAD stop until the user resumed or the turn was committed.
        resumed: True if the user went on speaking, False if the turn ended there.
    """

    secs: float
    resumed: bool


@dataclass(frozen=True)
class PatiencePause:
    """A pause the user resumed after (or was cut off in), kept for commit patience.

    Parameters:
        turns_ago: User turns between the turn it was seen in and the end of the session (1 is
            the session's last turn). Restoring keeps the age, so commit patience forgets it as
            if the sessions were one: a profile does not make patience last longer than it
            would have within a call.
        secs: Pause length, VAD stop to VAD start.
    """

    turns_ago: int
    secs: float


def _check_secs(name: str, value: object, high: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0) or value > high:
        bound = "(0" if positive else "[0"
        raise ProfileError(f"{name} = {value} outside {bound}, {high}]")
    return value


def _check_count(name: str, value: object, high: int = MAX_COUNT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(f"{name} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= high:
        raise ProfileError(f"{name} = {value} outside [0, {high}]")
    return value


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ProfileError(f"{name} must be true or false, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class TurnTakingProfile:
    """What the turn strategy learned about one user, bounded and free of text.

    Build one with :func:`~pipecat_speculative.profiles.snapshot_profile` at session end, store
    it with a :class:`~pipecat_speculative.profiles.ProfileStore`, and warm-start the next
    session's strategy with :func:`~pipecat_speculative.profiles.warm_start`.

    Parameters:
        speculation_delay_secs: The adaptive debounce's delay at the end of the last session.
        pauses: Recent pauses, oldest first (at most ``MAX_PAUSES``): the evidence the debounce
            learns its delay from, so a warm-started debounce can still reason about it.
        recent_outcomes: Recent speculation outcomes that taught the debounce, oldest first
            (True: withdrawn; at most ``MAX_OUTCOMES``).
        readiness_secs: Estimated speculation start → answer ready, if one was ever measured.
        readiness_measurements: How many measurements that estimate rests on (all sessions).
        patience_pauses: Recent pauses that called for commit patience, with their age.
        commit_patience_secs: The patience those pauses call for (factor × the longest +
            margin, within the patience bounds; the floor if there are none), for reports and
            the tuner. A warm start does not impose it on the next session's turns: it restores
            ``patience_pauses`` with their age and lets commit patience's own memory decide.
        cut_ins: Commits that cut the user off (all sessions).
        turns_seen: User turns this profile has seen (all sessions).
        sessions_seen: Sessions folded into this profile.
        updated_at: Unix time (seconds) of the last update.
        schema_version: The schema this profile follows; always ``SCHEMA_VERSION`` once built.
    """

    speculation_delay_secs: float = 0.0
    pauses: tuple[PauseSample, ...] = ()
    recent_outcomes: tuple[bool, ...] = ()
    readiness_secs: float | None = None
    readiness_measurements: int = 0
    patience_pauses: tuple[PatiencePause, ...] = ()
    commit_patience_secs: float = 0.0
    cut_ins: int = 0
    turns_seen: int = 0
    sessions_seen: int = 0
    updated_at: float = field(default_factory=time.time)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        if self.schema_version != SCHEMA_VERSION:
            raise ProfileVersionError(
                self.schema_version,
                f"a TurnTakingProfile is built at schema version {SCHEMA_VERSION}; "
                "read older ones with from_json/from_dict, which migrates them",
            )
        _check_secs("speculation_delay_secs", self.speculation_delay_secs, MAX_DELAY_SECS)
        if len(self.pauses) > MAX_PAUSES:
            raise ProfileError(f"{len(self.pauses)} pauses, at most {MAX_PAUSES}")
        for p in self.pauses:
            if not isinstance(p, PauseSample):
                raise ProfileError(f"pauses must hold PauseSample, got {type(p).__name__}")
            _check_secs("pause secs", p.secs, MAX_PAUSE_SECS)
            _check_bool("pause resumed", p.resumed)
        if len(self.recent_outcomes) > MAX_OUTCOMES:
            raise ProfileError(f"{len(self.recent_outcomes)} outcomes, at most {MAX_OUTCOMES}")
        for o in self.recent_outcomes:
            _check_bool("outcome", o)
        if self.readiness_secs is not None:
            _check_secs("readiness_secs", self.readiness_secs, MAX_READINESS_SECS, positive=True)
        _check_count("readiness_measurements", self.readiness_measurements)
        if len(self.patience_pauses) > MAX_PATIENCE_PAUSES:
            raise ProfileError(
                f"{len(self.patience_pauses)} patience pauses, at most {MAX_PATIENCE_PAUSES}"
            )
        for p in self.patience_pauses:
            if not isinstance(p, PatiencePause):
                raise ProfileError(
                    f"patience_pauses must hold PatiencePause, got {type(p).__name__}"
                )
            _check_count("patience pause turns_ago", p.turns_ago, MAX_TURNS_AGO)
            _check_secs("patience pause secs", p.secs, MAX_PAUSE_SECS)
        _check_secs("commit_patience_secs", self.commit_patience_secs, MAX_PATIENCE_SECS)
        for name in ("cut_ins", "turns_seen", "sessions_seen"):
            _check_count(name, getattr(self, name))
        _check_secs("updated_at", self.updated_at, 1e11)

    # ------------------------------------------------------------------ derived

    @property
    def recent_withdrawn(self) -> int:
        """Withdrawn speculations among the recent outcomes."""
        return sum(self.recent_outcomes)

    @property
    def recent_adopted(self) -> int:
        """Adopted speculations among the recent outcomes."""
        return len(self.recent_outcomes) - self.recent_withdrawn

    @property
    def window_cancel_rate(self) -> float | None:
        """Withdrawn / outcomes over the recent outcomes, None if there are none."""
        if not self.recent_outcomes:
            return None
        return self.recent_withdrawn / len(self.recent_outcomes)

    @property
    def resumed_pause_secs(self) -> tuple[float, ...]:
        """Lengths of the recent pauses that ended in resumption."""
        return tuple(p.secs for p in self.pauses if p.resumed)

    @property
    def turn_end_pause_secs(self) -> tuple[float, ...]:
        """Lengths of the recent pauses that ended the turn."""
        return tuple(p.secs for p in self.pauses if not p.resumed)

    # ------------------------------------------------------------------ building

    @classmethod
    def bounded(
        cls,
        *,
        speculation_delay_secs: float,
        pauses: Iterable[tuple[float, bool]] = (),
        recent_outcomes: Iterable[bool] = (),
        readiness_secs: float | None = None,
        readiness_measurements: int = 0,
        patience_pauses: Iterable[tuple[int, float]] = (),
        commit_patience_secs: float = 0.0,
        cut_ins: int = 0,
        turns_seen: int = 0,
        sessions_seen: int = 0,
        updated_at: float | None = None,
    ) -> TurnTakingProfile:
        """Build a profile from live values, trimming and clamping them into the bounds.

        The constructor refuses out-of-bound values (a stored profile that breaks them is
        corrupt); live state is merely long (a long session) or extreme (a user who left the
        line open), so here the newest items are kept and numbers are clamped and rounded.
        """

        def secs(value: float, high: float) -> float:
            value = float(value)
            if math.isnan(value):
                return 0.0  # an estimate gone wrong is no evidence
            return round(min(high, max(0.0, value)), _PRECISION)

        pause_list = [PauseSample(secs(s, MAX_PAUSE_SECS), bool(r)) for s, r in pauses]
        outcome_list = [bool(o) for o in recent_outcomes]
        patience_list = [
            PatiencePause(min(MAX_TURNS_AGO, max(0, int(t))), secs(s, MAX_PAUSE_SECS))
            for t, s in patience_pauses
        ]
        readiness = None
        if readiness_secs is not None and secs(readiness_secs, MAX_READINESS_SECS) > 0:
            readiness = max(0.001, secs(readiness_secs, MAX_READINESS_SECS))
        return cls(
            speculation_delay_secs=secs(speculation_delay_secs, MAX_DELAY_SECS),
            pauses=tuple(pause_list[-MAX_PAUSES:]),
            recent_outcomes=tuple(outcome_list[-MAX_OUTCOMES:]),
            readiness_secs=readiness,
            readiness_measurements=min(MAX_COUNT, max(0, readiness_measurements)),
            patience_pauses=tuple(patience_list[-MAX_PATIENCE_PAUSES:]),
            commit_patience_secs=secs(commit_patience_secs, MAX_PATIENCE_SECS),
            cut_ins=min(MAX_COUNT, max(0, cut_ins)),
            turns_seen=min(MAX_COUNT, max(0, turns_seen)),
            sessions_seen=min(MAX_COUNT, max(0, sessions_seen)),
            updated_at=time.time() if updated_at is None else updated_at,
        )

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain JSON types (pauses as ``[secs, resumed]`` pairs)."""
        return {
            "schema_version": self.schema_version,
            "speculation_delay_secs": self.speculation_delay_secs,
            "pauses": [[p.secs, p.resumed] for p in self.pauses],
            "recent_outcomes": list(self.recent_outcomes),
            "readiness_secs": self.readiness_secs,
            "readiness_measurements": self.readiness_measurements,
            "patience_pauses": [[p.turns_ago, p.secs] for p in self.patience_pauses],
            "commit_patience_secs": self.commit_patience_secs,
            "cut_ins": self.cut_ins,
            "turns_seen": self.turns_seen,
            "sessions_seen": self.sessions_seen,
            "updated_at": self.updated_at,
        }

    def to_json(self) -> str:
        """Compact JSON (keys sorted, so equal profiles serialize equally)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: object) -> TurnTakingProfile:
        """Validate and build a profile from :meth:`to_dict` output of this or an older schema.

        Raises:
            ProfileVersionError: The schema version is newer than this code, or older without a
                migration.
            ProfileError: A field is missing, unknown, of the wrong type or out of bounds.
        """
        if not isinstance(data, dict):
            raise ProfileError(f"a profile is a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ProfileVersionError(
                version, f"schema_version must be an integer, got {version!r}"
            )
        if version > SCHEMA_VERSION:
            raise ProfileVersionError(
                version,
                f"profile schema version {version} is newer than this code reads "
                f"({SCHEMA_VERSION}); upgrade pipecat-speculative to read it (it is left as is)",
            )
        while version < SCHEMA_VERSION:
            migrate = _MIGRATIONS.get(version)
            if migrate is None:
                raise ProfileVersionError(
                    version,
                    f"profile schema version {version} has no migration to {SCHEMA_VERSION}: "
                    f"version 1 is the first, so this is not a profile this package wrote",
                )
            data = migrate(dict(data))
            version = data["schema_version"]

        expected = set(cls().to_dict())
        missing, unknown = expected - set(data), set(data) - expected
        if missing or unknown:
            raise ProfileError(
                f"profile fields missing: {sorted(missing)}, unknown: {sorted(unknown)}"
            )
        try:
            pauses = tuple(PauseSample(*_pair(p, "pause")) for p in data["pauses"])
            patience = tuple(
                PatiencePause(*_pair(p, "patience pause")) for p in data["patience_pauses"]
            )
            outcomes = tuple(data["recent_outcomes"])
        except TypeError as e:
            raise ProfileError(f"malformed profile sequence: {e}") from e
        return cls(
            speculation_delay_secs=data["speculation_delay_secs"],
            pauses=pauses,
            recent_outcomes=outcomes,
            readiness_secs=data["readiness_secs"],
            readiness_measurements=data["readiness_measurements"],
            patience_pauses=patience,
            commit_patience_secs=data["commit_patience_secs"],
            cut_ins=data["cut_ins"],
            turns_seen=data["turns_seen"],
            sessions_seen=data["sessions_seen"],
            updated_at=data["updated_at"],
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> TurnTakingProfile:
        """Parse and validate a serialized profile (see :meth:`from_dict` for the errors)."""
        if len(text) > MAX_JSON_BYTES:
            raise ProfileError(f"serialized profile of {len(text)} bytes, at most {MAX_JSON_BYTES}")
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ProfileError(f"profile is not valid JSON: {e}") from e
        return cls.from_dict(data)


def _pair(value: object, what: str) -> tuple[Any, Any]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ProfileError(f"a {what} is a pair, got {value!r}")
    return value[0], value[1]


_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
"""Schema version N → a function turning a version-N dict into a version-N+1 dict.

Empty while version 1 is the only one; a later schema adds its predecessor's migration here, so
stored profiles survive an upgrade instead of every user starting cold again.
"""
