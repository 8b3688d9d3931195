"""The transcription guard keeps a final transcript through the turn-start interruption."""

from __future__ import annotations

from pipecat.frames.frames import InterimTranscriptionFrame, TranscriptionFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.testing import Timeline
from pipecat_speculative.testing import final_transcription as _final
from pipecat_speculative.turns.session_ending_frame import SessionEndingFrame
from pipecat_speculative.turns.transcription_guard import TranscriptionGuard
from tests.turns.test_speculative_strategy import Rig, user_messages


def interim_then_final_back_to_back():
    # "hello" is committed; then an interim starts the next turn with its final right behind it.
    frames = Timeline().say("hello", pause_after_secs=0.6).frames()
    return [*frames, InterimTranscriptionFrame("book", "u", ""), _final("book a table"),
            SleepFrame(sleep=1.5)]  # fmt: skip


class GuardedRig(Rig):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.guard = TranscriptionGuard()

    async def run(self, frames):
        down, _ = await run_test(
            Pipeline([self.guard, self.aggregator, self.llm]), frames_to_send=frames
        )
        return down


async def test_without_the_guard_the_turn_start_interruption_drops_the_queued_final():
    rig = Rig(stop_timeout=0.8)
    await rig.run(interim_then_final_back_to_back())
    assert user_messages(rig.context) == ["hello"]  # Pipecat 1.14 behaviour this guard exists for


async def test_with_the_guard_the_final_reaches_the_context():
    rig = GuardedRig(stop_timeout=0.8)
    await rig.run(interim_then_final_back_to_back())
    assert user_messages(rig.context) == ["hello", "book a table"]
    assert rig.guard.guarded == 2


async def test_the_guard_passes_frames_through_and_marks_only_finals():
    final = TranscriptionFrame("hi", "u", "")
    interim = InterimTranscriptionFrame("h", "u", "")
    down, up = await run_test(
        TranscriptionGuard(),
        frames_to_send=[interim, final],
        # run_test ends with an EndFrame, which the guard announces to the turn strategy.
        expected_down_frames=[InterimTranscriptionFrame, TranscriptionFrame, SessionEndingFrame],
    )
    assert down[0] is interim and interim.interruptible
    assert down[1] is final and not final.interruptible
