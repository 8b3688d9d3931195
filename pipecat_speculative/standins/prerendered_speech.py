"""Speech for the TTS stand-in rendered before a load run, so synthesis costs nothing while timed.

The ElevenLabs stand-in synthesizes the bot's answers on demand (Piper, ~60 ms of CPU per
sentence). In a load run with dozens of sessions on a small machine that CPU is the harness's,
not the plugin's, and it decides the latency. :class:`PrerenderedSpeechEngine` does all of its
Piper work up front: every sentence given to it exactly, and every word of a vocabulary as a clip.
While timed it only copies bytes: a known sentence is returned as rendered; any other text (the
stand-in LLM repeats what the user said, so most answers hold one sentence nobody can list in
advance) is assembled from the word clips with short gaps, real speech of about the right length.
A word outside the vocabulary becomes a short burst of the synthetic signal, and is counted
(:attr:`PrerenderedSpeechEngine.unknown_words`), so a run can say how much of its audio was real.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

import numpy as np

from pipecat_speculative.standins.speech_engine import SpeechEngine, SyntheticSpeechEngine

__all__ = ["PrerenderedSpeechEngine", "vocabulary"]

_WORD = re.compile(r"[A-Za-z0-9']+")
_WORD_GAP_SECS = 0.06
_SENTENCE_GAP_SECS = 0.25


def vocabulary(texts: Iterable[str]) -> set[str]:
    """The distinct words (lower case, letters, digits and apostrophes) of ``texts``."""
    return {w.lower() for text in texts for w in _WORD.findall(text)}


class PrerenderedSpeechEngine:
    """A :class:`SpeechEngine` that never synthesizes once :meth:`prerender` has run.

    Args:
        source: The engine that renders ahead of time (Piper for real speech).
        sample_rate: The rate clips are rendered at (the bot's TTS rate); another rate asked
            while timed falls back to ``source`` and is counted in :attr:`fallbacks`.
    """

    def __init__(self, source: SpeechEngine, sample_rate: int = 16000) -> None:
        self._source = source
        self._rate = sample_rate
        self._sentences: dict[str, bytes] = {}
        self._words: dict[str, bytes] = {}
        self._filler = SyntheticSpeechEngine(cache_size=64)
        self._lock = threading.Lock()
        self.name = f"prerendered ({source.name})"
        self.real_speech = source.real_speech
        self.exact = 0
        self.assembled = 0
        self.unknown_words = 0
        self.fallbacks = 0

    @property
    def prerendered(self) -> tuple[int, int]:
        """How many sentences and word clips are ready."""
        return len(self._sentences), len(self._words)

    def prerender(self, sentences: Iterable[str], words: Iterable[str] = ()) -> None:
        """Render ``sentences`` exactly and every word of ``words`` plus of the sentences (blocking)."""
        sentences = [" ".join(s.split()) for s in sentences]
        for text in sentences:
            if text and text not in self._sentences:
                self._sentences[text] = self._source.synthesize(text, self._rate)
        for word in sorted(vocabulary([*sentences, *words]) - self._words.keys()):
            self._words[word] = _trim(self._source.synthesize(word, self._rate))

    def synthesize(self, text: str, sample_rate: int) -> bytes:
        """The prerendered sentence, or one assembled from word clips (no synthesis)."""
        text = " ".join(text.split())
        if sample_rate != self._rate:
            with self._lock:
                self.fallbacks += 1
            return self._source.synthesize(text, sample_rate)
        exact = self._sentences.get(text)
        if exact is not None:
            with self._lock:
                self.exact += 1
            return exact
        pieces: list[bytes] = []
        unknown = 0
        gap = _silence(_WORD_GAP_SECS, sample_rate)
        for token in text.split(" "):
            for word in _WORD.findall(token):
                clip = self._words.get(word.lower())
                if clip is None:
                    unknown += 1
                    clip = self._filler.synthesize(word, sample_rate)
                pieces.append(clip)
                pieces.append(gap)
            if token[-1:] in ".!?":
                pieces.append(_silence(_SENTENCE_GAP_SECS, sample_rate))
        with self._lock:
            self.assembled += 1
            self.unknown_words += unknown
        return b"".join(pieces)

    def stats(self) -> dict[str, int]:
        """Counters: exact sentences, assembled texts, unknown words, rate fallbacks."""
        return {
            "exact": self.exact,
            "assembled": self.assembled,
            "unknown_words": self.unknown_words,
            "fallbacks": self.fallbacks,
        }


def _silence(secs: float, sample_rate: int) -> bytes:
    return b"\x00\x00" * int(secs * sample_rate)


def _trim(pcm: bytes, threshold: int = 300) -> bytes:
    """A word clip without its leading and trailing near-silence (Piper pads every utterance)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    if loud.size == 0:
        return pcm
    return samples[loud[0] : loud[-1] + 1].tobytes()
