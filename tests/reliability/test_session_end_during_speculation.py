"""EndFrame or CancelFrame while a speculation is held: resolved, not answered twice, not heard."""

import pytest
from pipecat.frames.frames import CancelFrame, EndFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import run_test

from pipecat_speculative.turns.speculation_events import WithdrawalReason
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
