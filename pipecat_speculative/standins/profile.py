"""Latency profiles for the loopback stand-ins.

A :class:`LatencyProfile` says how slow each stand-in pretends to be. Three named profiles stand
for three classes of real services (``reference``: the reference deployment's services on warm
connections, the defaults; ``slow``: a heavy model or a long RAG context; ``fast``: fast-inference
LLM and TTS), so no bench result depends on one guess about the services; ``instant`` removes
(almost) every delay for unit tests. ``docs/latency-profiles.md`` gives the sources.

Every delay a stand-in applies goes through :meth:`LatencyProfile.delay`, which adds the
profile's jitter from a seeded RNG: two runs with the same seed wait the same amounts.

Field names are shared with the Deepgram stand-in and the bench; keep them stable.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_PROFILE_NAMES",
    "DEFAULT_CONNECTION_PENALTIES_SECS",
    "PROFILE_NAMES",
    "LatencyProfile",
]

PROFILE_NAMES: tuple[str, ...] = ("reference", "slow", "fast", "instant")
"""Named latency profiles: three classes of real services, and ``instant`` for unit tests."""

BENCH_PROFILE_NAMES: tuple[str, ...] = ("reference", "slow", "fast")
"""The profiles a default bench run covers, one table each."""

DEFAULT_CONNECTION_PENALTIES_SECS: Mapping[str, float] = {
    # Reference: OpenAI time to first token +760 ms on a new connection (TLS + TCP + first hop).
    "openai": 0.76,
    # Reference: ElevenLabs first audio 639-642 ms cold vs ~280 ms warm → ~0.35 s handshake.
    "elevenlabs": 0.35,
    # Not measured in the reference; a WebSocket TLS handshake of the same order as ElevenLabs'.
    "deepgram": 0.3,
    # Not measured in the reference (its RAG timing was taken on a warm client); an estimate.
    "pinecone": 0.25,
}
"""Extra delay of the first response on a new TCP connection, per stand-in service name."""


def _secs(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0 or math.isinf(value):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


@dataclass
class LatencyProfile:
    """How slow the stand-ins are, stage by stage.

    All durations are seconds. "Warm" means on an already open connection; the first response on a
    new TCP connection (or a new WebSocket handshake) additionally waits
    ``new_connection_penalty_secs[service]``, which is what makes pre-warming measurable.

    Parameters:
        llm_ttft_secs: OpenAI time to first token on a warm connection. The reference log's
            first sentence came 1,294 ms after the request, 761 ms of which was a new
            connection: ~0.53 s on a warm one, which 0.42 s plus the first sentence's tokens
            reproduces.
        llm_tokens_per_sec: Streaming speed after the first token (estimated tokens of 4
            characters); public figures for small OpenAI models are 59-77 tokens/s. The
            stand-in's answers open with a short sentence of ~38 characters whose first word
            arrives at the first token, so with the defaults the sentence is complete
            0.42 + 9.5/70 ≈ 0.56 s after the request.
        tts_first_audio_secs: ElevenLabs first audio after a context's first text on a warm
            socket (reference 254-307 ms).
        tts_speed_factor: Seconds of audio produced per wall-clock second after the first audio.
            The real service generates faster than real time; this keeps later chunks from
            arriving all at once without making the stand-in a real-time bottleneck.
        new_connection_penalty_secs: Extra delay on a new connection per service name
            (``"openai"``, ``"elevenlabs"``, ``"deepgram"``, ``"pinecone"``). Missing names cost 0.
        rag_query_secs: Pinecone query latency (reference 390-593 ms).
        rag_upsert_secs: Pinecone upsert latency per request (ingest only; not in the turn path).
        stt_final_delay_secs: Deepgram final transcript after the audio that carries it (or after
            ``Finalize``); reference ~150 ms, p99 350 ms.
        stt_interim_interval_secs: How often Deepgram sends interim results while words arrive.
        flux_eager_eot_secs: Deepgram Flux ``EagerEndOfTurn`` after the end of speech.
        flux_eot_secs: Deepgram Flux ``EndOfTurn`` after the end of speech (must not be earlier
            than the eager one: Flux never confirms before it speculates).
        jitter: Relative spread of every delay, uniform in ``[1 - jitter, 1 + jitter]``. 0 keeps
            runs exactly repeatable in timing; the bench uses a little to avoid lock-step artifacts.
        seed: Seed of the jitter RNG, so a jittered run can be reproduced.
    """

    llm_ttft_secs: float = 0.42
    llm_tokens_per_sec: float = 70.0
    tts_first_audio_secs: float = 0.28
    tts_speed_factor: float = 4.0
    new_connection_penalty_secs: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_CONNECTION_PENALTIES_SECS)
    )
    rag_query_secs: float = 0.45
    rag_upsert_secs: float = 0.05
    stt_final_delay_secs: float = 0.15
    stt_interim_interval_secs: float = 0.25
    flux_eager_eot_secs: float = 0.3
    flux_eot_secs: float = 0.55
    jitter: float = 0.0
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name.endswith("_secs") and f.name != "new_connection_penalty_secs":
                _secs(f.name, getattr(self, f.name))
        if not isinstance(self.new_connection_penalty_secs, Mapping):
            raise ValueError("new_connection_penalty_secs must map service names to seconds")
        self.new_connection_penalty_secs = dict(self.new_connection_penalty_secs)
        for name, value in self.new_connection_penalty_secs.items():
            _secs(f"new_connection_penalty_secs[{name!r}]", value)
        for name in ("llm_tokens_per_sec", "tts_speed_factor"):
            value = getattr(self, name)
            _secs(name, value)
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        _secs("jitter", self.jitter)
        if self.jitter >= 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter!r}")
        if self.flux_eot_secs < self.flux_eager_eot_secs:
            raise ValueError(
                f"flux_eot_secs ({self.flux_eot_secs}) must be >= flux_eager_eot_secs "
                f"({self.flux_eager_eot_secs})"
            )
        self._rng = random.Random(self.seed)

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def reference(cls) -> LatencyProfile:
        """The reference deployment's services on warm connections (the defaults).

        See ``docs/latency-profiles.md`` for the sources of every value.
        """
        return cls()

    @classmethod
    def slow(cls, **overrides: Any) -> LatencyProfile:
        """A heavy model or a long RAG context: first token 0.62 s, 13 tokens/s.

        The first sentence is ready ~1.35 s after the request, so the answer, not the commit,
        bounds the latency: the profile where speculating early pays the most.

        Args:
            **overrides: Fields to set on top of the slow values.
        """
        values: dict[str, Any] = {"llm_ttft_secs": 0.62, "llm_tokens_per_sec": 13.0}
        values.update(overrides)
        return cls(**values)

    @classmethod
    def fast(cls, **overrides: Any) -> LatencyProfile:
        """Fast-inference services: first token ~0.2 s, ~200 tokens/s, TTS first audio ~0.19 s.

        The answer is ready before any sensible commit, so the commit bounds the latency: the
        profile where waiting for the user costs the most.

        Args:
            **overrides: Fields to set on top of the fast values.
        """
        values: dict[str, Any] = {
            "llm_ttft_secs": 0.2,
            "llm_tokens_per_sec": 200.0,
            "tts_first_audio_secs": 0.19,
            "rag_query_secs": 0.11,
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def instant(cls, **overrides: Any) -> LatencyProfile:
        """A profile with (almost) no delays, for unit tests.

        Streaming stays asynchronous (tiny non-zero pacing) so tests still see chunks arrive one
        at a time, but nothing waits long enough to matter on a busy machine.

        Args:
            **overrides: Fields to set on top of the instant values (e.g. one connection penalty).
        """
        values: dict[str, Any] = {
            "llm_ttft_secs": 0.0,
            "llm_tokens_per_sec": 100_000.0,
            "tts_first_audio_secs": 0.0,
            "tts_speed_factor": 1000.0,
            "new_connection_penalty_secs": {},
            "rag_query_secs": 0.0,
            "rag_upsert_secs": 0.0,
            "stt_final_delay_secs": 0.0,
            "stt_interim_interval_secs": 0.01,
            "flux_eager_eot_secs": 0.0,
            "flux_eot_secs": 0.0,
            "jitter": 0.0,
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def named(cls, name: str, **overrides: Any) -> LatencyProfile:
        """The profile called ``name`` (one of :data:`PROFILE_NAMES`).

        Args:
            name: ``reference``, ``slow``, ``fast`` or ``instant``.
            **overrides: Fields to set on top of it.

        Raises:
            ValueError: On an unknown name.
        """
        if name not in PROFILE_NAMES:
            raise ValueError(f"unknown latency profile {name!r} (have: {', '.join(PROFILE_NAMES)})")
        if name == "reference":
            return cls(**overrides)
        return getattr(cls, name)(**overrides)

    @classmethod
    def load(cls, name_or_path: str | Path) -> LatencyProfile:
        """A named profile, or one read from a YAML/JSON file (see :meth:`from_file`).

        Args:
            name_or_path: A name from :data:`PROFILE_NAMES` or a file path.
        """
        if str(name_or_path) in PROFILE_NAMES:
            return cls.named(str(name_or_path))
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(
                f"{name_or_path!r} is neither a latency profile name "
                f"({', '.join(PROFILE_NAMES)}) nor a readable file"
            )
        return cls.from_file(path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyProfile:
        """Build a profile from a mapping; missing fields keep their base's values.

        Args:
            data: Field values. An optional ``base:`` key (a name from :data:`PROFILE_NAMES`,
                ``reference`` by default) picks the starting point.

        Raises:
            ValueError: On unknown keys (a typo would otherwise silently keep a default).
        """
        values = dict(data)
        base = values.pop("base", "reference")
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown latency profile fields: {', '.join(unknown)}")
        if base not in PROFILE_NAMES:
            raise ValueError(f"base must be one of {', '.join(PROFILE_NAMES)}, got {base!r}")
        return cls.named(base, **values)

    @classmethod
    def from_file(cls, path: str | Path) -> LatencyProfile:
        """Load a profile from a YAML (``.yaml``/``.yml``) or JSON file.

        Args:
            path: The file. Its top level is a mapping of field names to values (see
                :meth:`from_dict`).
        """
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: a latency profile must be a mapping")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain data (round-trips through :meth:`from_dict`)."""
        return {
            f.name: (dict(v) if isinstance(v := getattr(self, f.name), dict) else v)
            for f in dataclasses.fields(self)
            if f.init
        }

    def replace(self, **changes: Any) -> LatencyProfile:
        """A copy with some fields changed (validated again; the RNG restarts from ``seed``)."""
        return dataclasses.replace(self, **changes)

    # -- use ----------------------------------------------------------------------------------

    def delay(self, secs: float) -> float:
        """``secs`` with the profile's jitter applied (never negative)."""
        if secs <= 0:
            return 0.0
        if self.jitter <= 0:
            return secs
        return max(0.0, secs * self._rng.uniform(1.0 - self.jitter, 1.0 + self.jitter))

    def connection_penalty(self, service: str) -> float:
        """The new-connection penalty for ``service`` (0 when the profile has none), jittered."""
        return self.delay(self.new_connection_penalty_secs.get(service, 0.0))

    def llm_stream_secs(self, tokens: float) -> float:
        """Time to stream ``tokens`` estimated tokens after the first one, jittered."""
        return self.delay(max(0.0, tokens) / self.llm_tokens_per_sec)
