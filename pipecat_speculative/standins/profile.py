"""Latency profiles for the loopback stand-ins.

A :class:`LatencyProfile` says how slow each stand-in pretends to be. The default values are
calibrated to the reference deployment in ``docs/design.md`` (end of user speech → first bot
audio 1.55 s on a simple turn, ElevenLabs first audio 639 ms cold / 254-307 ms warm), so a bench
run against the stand-ins lands in the same place as the real services did. :meth:`LatencyProfile.fast`
removes (almost) every delay for unit tests.

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

__all__ = ["DEFAULT_CONNECTION_PENALTIES_SECS", "LatencyProfile"]

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
        llm_ttft_secs: OpenAI time to first token on a warm connection (reference ~620 ms).
        llm_tokens_per_sec: Streaming speed after the first token (estimated tokens of 4
            characters). The stand-in's answers open with a short sentence of ~38 characters
            whose first word arrives at the first token, so with the defaults the sentence is
            complete 0.62 + 33/4/13 ≈ 1.25 s after the request, and a sentence aggregator that
            waits for the next word releases it at ~1.3 s, as in the reference log.
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

    llm_ttft_secs: float = 0.62
    llm_tokens_per_sec: float = 13.0
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
        """The profile calibrated to the reference deployment (the defaults)."""
        return cls()

    @classmethod
    def fast(cls, **overrides: Any) -> LatencyProfile:
        """A profile with (almost) no delays, for unit tests.

        Streaming stays asynchronous (tiny non-zero pacing) so tests still see chunks arrive one
        at a time, but nothing waits long enough to matter on a busy machine.

        Args:
            **overrides: Fields to set on top of the fast values (e.g. one connection penalty).
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
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyProfile:
        """Build a profile from a mapping; missing fields keep their defaults.

        Args:
            data: Field values. An optional ``base: fast|reference`` key picks the starting point.

        Raises:
            ValueError: On unknown keys (a typo would otherwise silently keep a default).
        """
        values = dict(data)
        base = values.pop("base", "reference")
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown latency profile fields: {', '.join(unknown)}")
        if base == "fast":
            return cls.fast(**values)
        if base != "reference":
            raise ValueError(f"base must be 'fast' or 'reference', got {base!r}")
        return cls(**values)

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
