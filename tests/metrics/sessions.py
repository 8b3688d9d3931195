"""Scripted tracker sessions shared by the metrics tests."""

from __future__ import annotations

from pipecat_speculative.metrics.turn_record import SessionSummary, TurnRecord
from pipecat_speculative.metrics.turn_timeline import TurnCompleted, TurnTimingTracker

__all__ = ["ordinary_turn", "speculative_session"]


def ordinary_turn(t: TurnTimingTracker, *, base: float = 0.0, key: int = 1, ctx: str = "c1"):
    """Speech, VAD stop at base+1.2 (t0 = base+1.0), commit, one inference, TTS, playback."""
    t.speech_started(base + 0.0)
    t.vad_stopped(base + 1.2, stop_secs=0.2, t0_unix=1_000.0)
    t.user_turn_committed(base + 1.8)
    t.inference_started(base + 1.801, key=key, speculative=False, text="what time is it")
    t.llm_processing_started(base + 1.802, llm="llm", key=key)
    t.llm_ttfb(base + 2.402, llm="llm", value_secs=0.6)
    t.first_sentence(base + 2.9)
    t.tts_started(base + 2.901, context_id=ctx)
    t.tts_audio(base + 3.15, context_id=ctx)
    t.audio_delivered(base + 3.16, context_id=ctx, secs=1.5)
    t.bot_started_speaking(base + 3.17)
    t.llm_usage(llm="llm", prompt_tokens=200, completion_tokens=30)
    t.tts_usage(characters=42)
    t.bot_stopped_speaking(base + 5.0)


def speculative_session() -> tuple[list[TurnRecord], SessionSummary]:
    """Two turns: an ordinary one, then one with a withdrawn and an adopted speculation."""
    t = TurnTimingTracker(session_id="demo")
    ordinary_turn(t)
    t.speech_started(10.0)
    t.vad_stopped(11.2, stop_secs=0.2, t0_unix=2_000.0)
    t.inference_started(11.4, key=11, speculative=True, text="and")
    t.llm_processing_started(11.41, llm="llm", key=11)
    t.speculation_withdrawn(11.5)
    t.llm_usage(llm="llm", prompt_tokens=90, completion_tokens=3)
    t.inference_started(11.6, key=12, speculative=True, text="and tomorrow")
    t.llm_processing_started(11.61, llm="llm", key=12)
    t.llm_ttfb(12.2, llm="llm", value_secs=0.59)
    t.user_turn_committed(12.4)
    t.first_sentence(12.41)
    t.tts_started(12.411, context_id="c2")
    t.tts_audio(12.66, context_id="c2")
    t.audio_delivered(12.67, context_id="c2", secs=1.0)
    t.bot_started_speaking(12.68)
    t.bot_stopped_speaking(13.8)
    t.session_ended(14.0)
    events = t.drain()
    records = [e.record for e in events if isinstance(e, TurnCompleted)]
    return records, t.summary()
