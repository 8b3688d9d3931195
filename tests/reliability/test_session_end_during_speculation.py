"""EndFrame or CancelFrame while a speculation is held: resolved, not answered twice, not heard."""

import pytest
from pipecat.frames.frames import CancelFrame, EndFrame, VADUserStartedSpeakingFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.speculation_events import WithdrawalReason
from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams
from pipecat_speculative.turns.transcription_guard import TranscriptionGuard
from tests.turns.fakes import SpeculationAwareFakeLLMService
from tests.turns.test_speculative_strategy import Rig, llm_output, user_messages
from tests.turns.timeline import Timeline


@pytest.mark.parametrize("end", [EndFrame, CancelFrame])
async def test_session_end_while_a_speculation_is_held(end):
    # The commit rule would fire only after 30 s: the speculation is open (its answer held by
    # the gate) when the session ends.
    rig = Rig(llm=SpeculationAwareFakeLLMService(piece_delay=0.05), commit=30.0)
    frames = [*Timeline().say("hello there", pause_after_secs=0.4).frames(), end()]
    down, _ = await run_test(
        Pipeline([TranscriptionGuard(), rig.aggregator, rig.llm]),
        frames_to_send=frames,
        send_end_frame=False,
    )
    planner = rig.strategy.planner
    assert planner.started == 1
    assert planner.started == planner.adopted + sum(planner.withdrawn.values())
    assert [r.withdrawal_reason for r in rig.names("on_speculation_withdrawn")] == [
        WithdrawalReason.TURN_ENDED
    ]
    assert rig.llm.started == [("hello there", True)]  # no second, non-speculative inference
    heard = [f for f in llm_output(down) if f.startswith("LLM")]
    assert heard == []  # nothing of the withdrawn answer is heard
    assert user_messages(rig.context) == ["hello there"]  # the words are kept, unanswered


async def test_session_end_without_a_speculation_is_stock():
    # The user is cut off before any speculation (debounce not elapsed): Pipecat's own
    # session-end flush runs, as without the strategy.
    rig = Rig(commit=30.0)
    frames = [*Timeline().say("hello there", pause_after_secs=0.0).frames(), EndFrame()]
    await run_test(
        Pipeline([TranscriptionGuard(), rig.aggregator, rig.llm]),
        frames_to_send=frames,
        send_end_frame=False,
    )
    assert rig.strategy.planner.started == 0
    assert user_messages(rig.context) == ["hello there"]


@pytest.mark.parametrize("end", [EndFrame, CancelFrame])
async def test_session_end_while_a_speculation_is_held_and_the_user_makes_a_sound(end):
    # Found by the session-end property test: the session ends while the VAD hears something
    # (no words yet). Pipecat's controller refuses to end a turn while the user speaks, so the
    # held speculation was withdrawn and the aggregator's session-end flush ran a second,
    # non-speculative inference on the same words.
    rig = Rig(llm=SpeculationAwareFakeLLMService(piece_delay=0.05), commit=30.0)
    frames = [
        *Timeline().say("hello there", pause_after_secs=0.4).frames(),
        VADUserStartedSpeakingFrame(start_secs=0.2),
        SleepFrame(sleep=0.1),
        end(),
    ]
    down, _ = await run_test(
        Pipeline([TranscriptionGuard(), rig.aggregator, rig.llm]),
        frames_to_send=frames,
        send_end_frame=False,
    )
    planner = rig.strategy.planner
    assert planner.started == 1 == sum(planner.withdrawn.values())
    assert rig.llm.started == [("hello there", True)]  # no second, non-speculative inference
    assert [f for f in llm_output(down) if f.startswith("LLM")] == []
    assert user_messages(rig.context) == ["hello there"]


@pytest.mark.parametrize("end", [EndFrame, CancelFrame])
async def test_no_speculation_starts_after_the_session_end(end):
    # Found by the session-end property test: the session ends while the user speaks, before
    # any speculation; the speech ends with it (a VAD stop), which arms the debounce. Its timer
    # fired after the aggregator's session-end flush and started a speculation nothing resolved.
    rig = Rig(commit=30.0, params=SpeculativeTurnParams(debounce=DebounceParams(initial_secs=0.0)))
    frames = Timeline().say("hello there", pause_after_secs=0.0, final_after_stop_secs=-0.01)
    frames = [*frames.frames(), VADUserStartedSpeakingFrame(start_secs=0.2)]
    await run_test(
        Pipeline([TranscriptionGuard(), rig.aggregator, rig.llm]),
        frames_to_send=[*frames, end()],
        send_end_frame=False,
    )
    planner = rig.strategy.planner
    assert planner.speculation is None
    assert planner.started == planner.adopted + sum(planner.withdrawn.values())
    assert user_messages(rig.context) == ["hello there"]
