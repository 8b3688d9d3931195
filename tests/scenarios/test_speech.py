"""Real synthesized user speech: Piper output, word timings, the cache, and Silero on it."""

import sys

import numpy as np
import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

from pipecat_speculative.scenarios import speech as speech_module
from pipecat_speculative.scenarios.speech import (
    CACHE_ENV_VAR,
    PiperSpeechSynthesizer,
    SpeechSynthesisUnavailableError,
    default_cache_dir,
    estimate_word_timings,
)

FIRST = "I want to memorize the document that I have"
SECOND = "and tell me the key points please"


@pytest.fixture(scope="module")
def synthesizer() -> PiperSpeechSynthesizer:
    # The default cache (~/.cache or $PIPECAT_SPECULATIVE_CACHE): synthesis runs once per machine.
    return PiperSpeechSynthesizer()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2")


def test_speech_is_non_silent_16khz_mono_with_monotone_word_times(synthesizer):
    speech = synthesizer.synthesize("with you, like, the key points")

    assert speech.sample_rate == 16000
    audio = samples(speech.pcm)
    assert 0.8 < speech.duration_secs < 4.0
    assert np.abs(audio).max() > 10000  # Piper normalizes to full scale
    # Trimmed: the audio starts and ends voiced (no leading or trailing silence).
    assert np.abs(audio[:160]).max() > 300 and np.abs(audio[-160:]).max() > 300
    assert [w.word for w in speech.words] == ["with", "you,", "like,", "the", "key", "points"]
    ends = [w.end_secs for w in speech.words]
    assert ends == sorted(ends)
    assert all(w.start_secs <= w.end_secs for w in speech.words)
    assert ends[-1] == pytest.approx(speech.duration_secs)


def test_word_timings_follow_phrase_pauses_when_there_is_one_per_comma():
    # Two pauses for two commas: each phrase is spread over its own stretch of speech.
    timings = estimate_word_timings("with you, like, the key points", 2.0, [(0.4, 0.7), (1.0, 1.3)])
    ends = {w.word: (w.start_secs, w.end_secs) for w in timings}
    assert ends["you,"][1] == pytest.approx(0.4)
    assert ends["like,"] == (pytest.approx(0.7), pytest.approx(1.0))
    assert ends["the"][0] == pytest.approx(1.3)
    assert timings[-1].end_secs == pytest.approx(2.0)

    # A pause count that does not match the punctuation: plain proportional spread.
    plain = estimate_word_timings("ab cd", 1.0, [(0.2, 0.4), (0.6, 0.8)])
    assert [(w.start_secs, w.end_secs) for w in plain] == [(0.0, 0.5), (0.5, 1.0)]


def test_the_cache_returns_the_same_audio_without_running_piper(tmp_path, monkeypatch):
    cached = PiperSpeechSynthesizer(cache_dir=tmp_path)
    first = cached.synthesize("Good morning")
    assert len(list(tmp_path.iterdir())) == 2  # audio + timings

    def no_piper(*args, **kwargs):
        raise AssertionError("Piper must not run for a cached segment")

    monkeypatch.setattr(speech_module, "_load_voice", no_piper)
    again = PiperSpeechSynthesizer(cache_dir=tmp_path).synthesize("Good morning")
    assert again == first
    # A different speaking rate is a different recording.
    with pytest.raises(AssertionError, match="must not run"):
        PiperSpeechSynthesizer(cache_dir=tmp_path).synthesize("Good morning", speaking_rate=1.2)


def test_the_cache_directory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    assert default_cache_dir() == tmp_path / "speech"
    monkeypatch.delenv(CACHE_ENV_VAR)
    assert default_cache_dir().parts[-2:] == ("pipecat-speculative", "speech")


def test_without_piper_synthesis_fails_loudly(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "piper", None)  # import piper -> ImportError
    synthesizer = PiperSpeechSynthesizer(cache_dir=tmp_path)
    with pytest.raises(SpeechSynthesisUnavailableError, match="piper-tts is not installed"):
        synthesizer.synthesize("Hello")

    missing = PiperSpeechSynthesizer(model_path=tmp_path / "nope.onnx", cache_dir=tmp_path)
    with pytest.raises(SpeechSynthesisUnavailableError, match="not found"):
        missing.synthesize("Hello")


def test_empty_text_is_rejected(synthesizer):
    with pytest.raises(ValueError, match="empty"):
        synthesizer.synthesize("   ")


async def vad_segments(pcm: bytes, stop_secs: float) -> list[tuple[float, float]]:
    """(start, stop) times in seconds of the speech Silero finds, 20 ms chunks like a transport."""
    vad = SileroVADAnalyzer(sample_rate=16000, params=VADParams(stop_secs=stop_secs))
    vad.set_sample_rate(16000)
    found: list[tuple[float, float]] = []
    speaking_since: float | None = None
    try:
        for i in range(0, len(pcm), 640):
            state = await vad.analyze_audio(pcm[i : i + 640])
            t = (i + 640) / 32000
            if state == VADState.SPEAKING and speaking_since is None:
                speaking_since = t
            elif state == VADState.QUIET and speaking_since is not None:
                found.append((speaking_since, t))
                speaking_since = None
    finally:
        await vad.cleanup()
    return found


@pytest.mark.parametrize("pause_secs", [0.8, 0.3])
async def test_silero_finds_both_segments_of_an_utterance_with_a_pause(synthesizer, pause_secs):
    first = synthesizer.synthesize(FIRST)
    second = synthesizer.synthesize(SECOND)
    silence = b"\x00\x00"
    pcm = (
        silence * 4800 + first.pcm + silence * int(16000 * pause_secs) + second.pcm + silence * 9600
    )

    segments = await vad_segments(pcm, stop_secs=0.2)

    assert len(segments) == 2
    first_end = 0.3 + first.duration_secs
    # The VAD stops stop_secs (plus a frame or two) after the real end of speech.
    assert first_end + 0.15 <= segments[0][1] <= first_end + 0.4
    assert segments[1][0] > first_end + pause_secs
