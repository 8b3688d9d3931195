"""Keep final transcripts through the interruption the user aggregator broadcasts at turn start.

Pipecat 1.14's ``LLMUserAggregator`` broadcasts an ``InterruptionFrame`` when a user turn starts,
and an interruption empties the aggregator's queue of every interruptible frame. A final
``TranscriptionFrame`` still waiting in that queue at that instant is dropped: the user's words
never reach the context, and the turn is committed (or answered) without them. It happens when
the turn is started by a transcript, with the final right behind it::

    STT:        interim "book" ─ final "book a table"      (back to back)
    aggregator: interim starts the turn ─ interruption ─ queue emptied ─ "book a table" lost

A real STT rarely produces that timing, but nothing in the pipeline prevents it, and losing user
words is worse than any latency. This processor, placed between the STT and the user aggregator,
marks every final transcript uninterruptible *as it is queued into it*, so no queue after it
(the aggregator's included) drops it. Interim transcripts are left alone: a later final or
interim supersedes them.

Its second job, for the same reason of position: announce the end of the session to the turn
strategy. It pushes a :class:`~pipecat_speculative.turns.session_ending_frame.SessionEndingFrame`
just before an ``EndFrame`` (and a ``SessionCancellingFrame`` before a ``CancelFrame``), so a held
speculation is resolved before the aggregator flushes the open turn into a second inference. If
the VAD still hears the user at that moment, a ``VADUserStoppedSpeakingFrame`` goes first: the
user's speech ends with the session, and Pipecat's turn controller never ends a turn while the
user speaks, so without it the held speculation could only be withdrawn and the flush would run
that second inference anyway.
"""

from __future__ import annotations

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameCallback, FrameDirection, FrameProcessor

from pipecat_speculative.turns.session_ending_frame import (
    SessionCancellingFrame,
    SessionEndingFrame,
)

__all__ = ["TranscriptionGuard"]


class TranscriptionGuard(FrameProcessor):
    """Marks final transcripts uninterruptible; passes every frame through unchanged otherwise.

    Place it right after the STT: ``stt -> TranscriptionGuard() -> user_aggregator``.
    """

    def __init__(self, **kwargs):
        """Initialize the guard.

        Args:
            **kwargs: Passed to :class:`~pipecat.processors.frame_processor.FrameProcessor`.
        """
        super().__init__(**kwargs)
        self.guarded = 0
        self._vad_speaking = False

    async def queue_frame(
        self,
        frame: Frame,
        direction: FrameDirection = FrameDirection.DOWNSTREAM,
        callback: FrameCallback | None = None,
    ):
        """Mark a final transcript before it enters this processor's own queue."""
        if isinstance(frame, TranscriptionFrame) and frame.interruptible:
            frame.interruptible = False
            self.guarded += 1
        await super().queue_frame(frame, direction, callback)

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Pass the frame on, announcing a session end first."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, VADUserStartedSpeakingFrame):
                self._vad_speaking = True
            elif isinstance(frame, VADUserStoppedSpeakingFrame):
                self._vad_speaking = False
            elif isinstance(frame, (EndFrame, CancelFrame)):
                if self._vad_speaking:
                    self._vad_speaking = False
                    await self.push_frame(VADUserStoppedSpeakingFrame(), direction)
                ending = (
                    SessionEndingFrame if isinstance(frame, EndFrame) else SessionCancellingFrame
                )
                await self.push_frame(ending(), direction)
        await self.push_frame(frame, direction)
