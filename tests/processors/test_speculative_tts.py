"""Speculative TTS: the held answer is synthesized before the commit and heard only after it.

Through the real user aggregator and strategy, a speculation-aware LLM (the fake, with the real
gate), the real ElevenLabs WebSocket service against the ElevenLabs stand-in, and the output gate.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipecat.frames.frames import (
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import run_test

from pipecat_speculative.frames import SpeculationStage
from pipecat_speculative.processors import SpeculativeOutputGate
from pipecat_speculative.services.speculative_tts_mixin import SpeculativeTTSMixin
from pipecat_speculative.services.warm_elevenlabs_tts_service import WarmElevenLabsTTSService
from pipecat_speculative.standins import ElevenLabsStandin
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.speculation_events import WithdrawalReason
from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams
from tests.turns.fakes import SpeculationAwareFakeLLMService
from tests.turns.test_speculative_strategy import Rig
from tests.turns.timeline import Timeline


class SpeculativeElevenLabs(SpeculativeTTSMixin, WarmElevenLabsTTSService):
    pass


def make_rig(server: ElevenLabsStandin, *, piece_delay: float = 0.05):
    params = SpeculativeTurnParams(
        debounce=DebounceParams(initial_secs=0.05), ready_stage=SpeculationStage.FIRST_AUDIO
    )
    rig = Rig(
        llm=SpeculationAwareFakeLLMService(piece_delay=piece_delay, speculative_tts=True),
        commit=0.3,
        params=params,
    )
    tts = SpeculativeElevenLabs(
        api_key="test",
        url=server.ws_url,
        sample_rate=16000,
        settings=WarmElevenLabsTTSService.Settings(voice="standin"),
    )
    gate = SpeculativeOutputGate()
    return rig, tts, gate


async def run(rig, tts, gate, frames):
    down, _ = await run_test(Pipeline([rig.aggregator, rig.llm, tts, gate]), frames_to_send=frames)
    return down


def kinds(frames, keep=(UserStoppedSpeakingFrame, LLMFullResponseStartFrame, TTSStartedFrame)):
    return [type(f).__name__ for f in frames if isinstance(f, keep)]


def spoken(frames) -> str:
    return " ".join(f.text.strip() for f in frames if isinstance(f, TTSTextFrame)).strip()


async def test_the_answer_is_synthesized_before_the_commit_and_released_in_order():
    profile = LatencyProfile.instant(tts_first_audio_secs=0.2)
    async with ElevenLabsStandin(profile=profile, speech="synthetic") as server:
        rig, tts, gate = make_rig(server)
        down = await run(
            rig, tts, gate, Timeline().say("what's the weather", pause_after_secs=1.5).frames()
        )

    # Nothing of the answer reached the output before the commit; all of it after, in order.
    commit = next(i for i, f in enumerate(down) if isinstance(f, UserStoppedSpeakingFrame))
    first_audio = next(i for i, f in enumerate(down) if isinstance(f, TTSAudioRawFrame))
    assert commit < first_audio
    assert kinds(down) == [
        "UserStoppedSpeakingFrame",
        "LLMFullResponseStartFrame",
        "TTSStartedFrame",
    ]
    released = [
        type(f).__name__
        for f in down[commit:]
        if isinstance(
            f,
            (LLMFullResponseStartFrame, TTSStartedFrame, TTSStoppedFrame, LLMFullResponseEndFrame),
        )
    ]
    assert released[0] == "LLMFullResponseStartFrame" and released[1] == "TTSStartedFrame"
    assert "LLMFullResponseEndFrame" in released
    (record,) = rig.names("on_speculation_adopted")
    (commit_event,) = rig.names("on_user_turn_committed")
    # The commit waited for the first audio (the stand-in's 0.2 s), not just the 0.3 s floor.
    assert record.ready_at is not None and commit_event.committed_at >= record.ready_at
    # Synthesized once, on one context, before the commit.
    contexts = [c for c in server.tts_stats.contexts if c.text.strip()]
    assert [c.text.strip() for c in contexts] == ["ANSWER: what's the weather"]
    assert spoken(down) == "ANSWER: what's the weather"
    assert gate.held_responses == 1


async def test_a_withdrawal_mid_synthesis_closes_the_context_and_nothing_of_it_is_heard():
    # A slow TTS: the first answer is still being synthesized when the user goes on.
    profile = LatencyProfile.instant(tts_first_audio_secs=0.6, tts_speed_factor=2.0)
    async with ElevenLabsStandin(profile=profile, speech="synthetic") as server:
        rig, tts, gate = make_rig(server)
        timeline = (
            Timeline()
            .say("I want", pause_after_secs=0.45)
            .say("a table for two", pause_after_secs=1.8)
        )
        down = await run(rig, tts, gate, timeline.frames())

    withdrawn = rig.names("on_speculation_withdrawn")
    assert [r.withdrawal_reason for r in withdrawn] == [WithdrawalReason.RESUMED]
    assert spoken(down) == "ANSWER: I want a table for two"
    assert sum(isinstance(f, LLMFullResponseStartFrame) for f in down) == 1
    stale = [c for c in server.tts_stats.contexts if c.text.strip() == "ANSWER: I want"]
    assert stale, "the withdrawn answer reached the TTS before the withdrawal"
    # The service closed the withdrawn answer's context and sent it no text after that.
    assert all(c.close_requested_at is not None for c in stale)
    assert tts.withdrawals_interrupted >= 1


async def test_without_a_speculation_the_gate_passes_everything_at_once():
    async with ElevenLabsStandin(profile=LatencyProfile.instant(), speech="synthetic") as server:
        _, tts, gate = make_rig(server)
        down, _ = await run_test(
            Pipeline([tts, gate]),
            frames_to_send=[
                LLMFullResponseStartFrame(),
                *[
                    __import__("pipecat.frames.frames", fromlist=["LLMTextFrame"]).LLMTextFrame(
                        "Hello there."
                    )
                ],
                LLMFullResponseEndFrame(),
            ],
        )
    assert spoken(down) == "Hello there."
    assert gate.held_responses == 0


# ---------------------------------------------------------------- random conversations

WORDS = ["I", "want", "to", "book", "a", "table", "for", "two"]

segments = st.lists(
    st.fixed_dictionaries(
        {
            "words": st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
            "speech_secs": st.floats(0.03, 0.12),
            "pause_after_secs": st.floats(0.0, 0.35),
            "final_after_stop_secs": st.floats(-0.03, 0.12),
            "interim": st.booleans(),
        }
    ),
    min_size=1,
    max_size=3,
)


def heard_responses(frames):
    """Each response that reached the output: (its words, completed), in order."""
    out: list[list] = []
    for f in frames:
        if isinstance(f, LLMFullResponseStartFrame):
            out.append([[], False])
        elif isinstance(f, TTSTextFrame) and out:
            out[-1][0].append(f.text.strip())
        elif isinstance(f, LLMFullResponseEndFrame) and out:
            out[-1][1] = True
    return [(" ".join(w for w in words if w), done) for words, done in out]


@pytest.mark.timeout(900)
@settings(
    max_examples=int(os.environ.get("TTS_PIPELINE_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(turn=segments, piece_delay=st.floats(0.0, 0.05), first_audio=st.floats(0.0, 0.3))
async def test_nothing_withdrawn_is_heard_and_no_audio_plays_before_its_commit(
    turn, piece_delay, first_audio
):
    profile = LatencyProfile.instant(tts_first_audio_secs=first_audio)
    async with ElevenLabsStandin(profile=profile, speech="synthetic") as server:
        rig, tts, gate = make_rig(server, piece_delay=piece_delay)
        timeline = Timeline()
        for seg in turn:
            timeline.say(" ".join(seg.pop("words")), **seg)
        timeline.segments[-1].pause_after_secs = 0.0
        down = await run(rig, tts, gate, timeline.frames(tail_secs=1.2))

    committed = [m["content"] for m in rig.context.messages if m.get("role") == "user"]
    commits = [c.text for c in rig.names("on_user_turn_committed")]
    assert commits == committed
    # Audio never reaches the output before the commit of the turn it answers.
    first_audio_at = next((i for i, f in enumerate(down) if isinstance(f, TTSAudioRawFrame)), None)
    if first_audio_at is not None:
        assert any(isinstance(f, UserStoppedSpeakingFrame) for f in down[:first_audio_at])
    # Every response heard answers a committed turn, in order; completed ones exactly.
    heard = heard_responses(down)
    position = 0
    for text, done in heard:
        while position < len(committed) and not (
            text == f"ANSWER: {committed[position]}"
            if done
            else f"ANSWER: {committed[position]}".startswith(text)
        ):
            position += 1
        assert position < len(committed), (heard, committed)
        position += 1
    # Nothing of a withdrawn speculation was heard (unless a committed turn had the same text).
    for record in rig.names("on_speculation_withdrawn"):
        if record.text not in committed:
            assert all(text != f"ANSWER: {record.text}" for text, _ in heard)
    planner = rig.strategy.planner
    assert planner.started == planner.adopted + sum(planner.withdrawn.values())
