"""Make any Pipecat TTS service stop synthesizing a speculation the moment it is withdrawn."""

from __future__ import annotations

from pipecat.frames.frames import EagerEndOfTurnCancelFrame, Frame, InterruptionFrame
from pipecat.processors.frame_processor import FrameDirection

__all__ = ["SpeculativeTTSMixin"]


class SpeculativeTTSMixin:
    """Mixin for a ``TTSService`` subclass used with speculative TTS.

    ``class MyTTS(SpeculativeTTSMixin, ElevenLabsTTSService)``: it must come first in the bases.

    Stock TTS services ignore ``EagerEndOfTurnCancelFrame``: with speculative TTS they would go on
    synthesizing (and billing) a withdrawn answer, and a WebSocket service that pauses its frames
    while an audio context is open (ElevenLabs) would hold the next answer behind it. On a
    withdrawal this runs the service's own interruption handling locally: queued text is dropped,
    open audio contexts are closed (ElevenLabs sends ``close_context``), frame processing resumes.
    The interruption is not pushed on: downstream, the
    :class:`~pipecat_speculative.processors.speculative_output_gate.SpeculativeOutputGate`
    drops what was already synthesized when the withdrawal itself reaches it, and nothing else
    (the output transport, the assistant aggregator, observers) sees an interruption that the
    user did not make.

    Safe while the user's turn is open, which a withdrawal always is: the turn's start already
    interrupted whatever the bot was saying, and uninterruptible speech is kept by the service's
    interruption handling.
    """

    def __init__(self, *args, **kwargs):
        """Initialize the mixin and forward everything to the service."""
        super().__init__(*args, **kwargs)
        self._withdrawal_interruption: InterruptionFrame | None = None
        self.withdrawals_interrupted = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Interrupt the synthesis of a withdrawn speculation, then pass the withdrawal on."""
        if isinstance(frame, EagerEndOfTurnCancelFrame) and direction == FrameDirection.DOWNSTREAM:
            self._withdrawal_interruption = InterruptionFrame()
            try:
                await super().process_frame(self._withdrawal_interruption, direction)  # type: ignore[misc]
            finally:
                self._withdrawal_interruption = None
            self.withdrawals_interrupted += 1
        await super().process_frame(frame, direction)  # type: ignore[misc]

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Keep the local interruption local."""
        if frame is self._withdrawal_interruption:
            return
        await super().push_frame(frame, direction)  # type: ignore[misc]
