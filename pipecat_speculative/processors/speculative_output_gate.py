"""Holds a speculative response after the TTS, so its audio is ready, unheard, at the commit."""

from __future__ import annotations

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    LLMFullResponseStartFrame,
    TTSAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameCallback, FrameDirection, FrameProcessor
from pipecat.turns.speculation_gate import SpeculationGate, SpeculationState

from pipecat_speculative.frames import (
    SPECULATIVE_RESPONSE_KEY,
    SpeculationProgressFrame,
    SpeculationStage,
)

__all__ = ["SpeculativeOutputGate"]


class SpeculativeOutputGate(FrameProcessor):
    """Pipecat's ``SpeculationGate``, after the TTS instead of inside the LLM.

    With speculative TTS the LLM lets a speculative response through (marked with
    :data:`~pipecat_speculative.frames.SPECULATIVE_RESPONSE_KEY` on its start frame) so the TTS
    synthesizes it while the user is still silent. This processor, placed right after the TTS and
    before the output transport and the assistant aggregator, holds everything of that response
    (its start, TTS started, audio, word timestamps, TTS stopped, end) until the turn is committed
    (``UserStoppedSpeakingFrame``), and drops it when the speculation is withdrawn or interrupted,
    with the gate's own rules: nothing of a withdrawn speculation is heard or reaches the context.

    It reports the first audio it holds upstream as a ``FIRST_AUDIO``
    :class:`~pipecat_speculative.frames.SpeculationProgressFrame`, so the commit can come the
    moment the answer's audio is ready: it then plays at once.

    Like the speculation-aware LLM, it counts user turns as their frames enter, so a turn that
    starts while the previous one is being committed (start(2) before stop(1)) still holds its
    speculation.
    """

    def __init__(self, **kwargs):
        """Initialize the gate.

        Args:
            **kwargs: Forwarded to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._gate = SpeculationGate(name=f"{self}::SpeculationGate")
        self._open_turns = 0
        self._user_text: str | None = None
        self._audio_reported = False
        self.held_responses = 0
        self.dropped_responses = 0

    @property
    def state(self) -> SpeculationState:
        """What the gate does with frames right now."""
        return self._gate.state

    async def queue_frame(
        self,
        frame: Frame,
        direction: FrameDirection = FrameDirection.DOWNSTREAM,
        callback: FrameCallback | None = None,
    ):
        """Count user turns as their frames enter (before any reordering of system frames)."""
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, UserStartedSpeakingFrame):
                self._open_turns += 1
            elif isinstance(frame, UserStoppedSpeakingFrame):
                self._open_turns = max(0, self._open_turns - 1)
        await super().queue_frame(frame, direction, callback)

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Hold, release or drop frames of a speculative response; pass everything else."""
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, LLMFullResponseStartFrame):
            self._begin(frame)
        held_before = self._gate.state == SpeculationState.HOLDING
        for out, out_direction in self._gate.process(frame, direction):
            await self.push_frame(out, out_direction)
        if held_before and self._gate.state != SpeculationState.HOLDING:
            logger.trace(f"{self}: speculative response left the hold ({self._gate.state.value})")
        if (
            isinstance(frame, TTSAudioRawFrame)
            and self._gate.state == SpeculationState.HOLDING
            and not self._audio_reported
            and self._user_text is not None
        ):
            self._audio_reported = True
            await self.push_frame(
                SpeculationProgressFrame(
                    stage=SpeculationStage.FIRST_AUDIO, user_text=self._user_text
                ),
                FrameDirection.UPSTREAM,
            )

    def _begin(self, frame: LLMFullResponseStartFrame):
        """Tell the gate whether the response opening here answers an unconfirmed turn."""
        user_text = frame.metadata.get(SPECULATIVE_RESPONSE_KEY)
        if user_text is None:
            self._gate.begin_speculation(False)
            return
        if self._open_turns > 0:
            # Only the gate's bookkeeping: a turn is open whatever the last turn frame was.
            self._gate.process(UserStartedSpeakingFrame(), FrameDirection.DOWNSTREAM)
        self._gate.begin_speculation(True)
        self._user_text = str(user_text)
        self._audio_reported = False
        if self._gate.is_speculating:
            self.held_responses += 1
