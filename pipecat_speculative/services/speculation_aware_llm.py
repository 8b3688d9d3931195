"""Make any Pipecat LLM service drop a speculative context that was withdrawn while still queued.

Stock Pipecat 1.14 stops a speculative inference on ``EagerEndOfTurnCancelFrame`` only if the
service's SpeculationGate already ``is_speculating``, i.e. only once the speculative
``LLMContextFrame`` has started. A withdrawal that overtakes a context still waiting in the
service's queue (behind another inference, or in a burst of re-speculations) is a no-op: the stale
inference then runs to the end, bills its tokens, and delays the inference that replaced it. Worse,
if the turn is committed while it runs, the gate releases it as if it were the answer.

The withdrawal is a system frame and the context a data frame, so both enter the service through
``queue_frame`` in the order they were pushed, but the withdrawal is *processed* first. This mixin
numbers speculative contexts as they enter; a withdrawal (or an interruption) entering after them
voids every one still waiting, and each voided context is dropped when its turn to be processed
comes. Contexts entering after the withdrawal (the replacement speculation) are untouched.
"""

from __future__ import annotations

from loguru import logger
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
)
from pipecat.processors.frame_processor import FrameCallback, FrameDirection

__all__ = ["SpeculationAwareLLMMixin"]


class SpeculationAwareLLMMixin:
    """Mixin for an ``LLMService`` subclass: ``class MyLLM(SpeculationAwareLLMMixin, OpenAILLMService)``.

    Must come before the service class in the bases, so its ``queue_frame`` and ``process_frame``
    run first.
    """

    def __init__(self, *args, **kwargs):
        """Initialize the mixin and forward everything to the service."""
        super().__init__(*args, **kwargs)
        # Sequence number of the last speculative context that entered the queue.
        self._speculative_entered = 0
        # Speculative contexts with a sequence number up to this one are withdrawn.
        self._speculative_void_through = 0
        # Frame id -> sequence number, for speculative contexts not yet processed.
        self._speculative_waiting: dict[int, int] = {}
        self.dropped_withdrawn_contexts = 0

    async def queue_frame(
        self,
        frame: Frame,
        direction: FrameDirection = FrameDirection.DOWNSTREAM,
        callback: FrameCallback | None = None,
    ):
        """Number speculative contexts and void the waiting ones on a withdrawal."""
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, LLMContextFrame) and frame.speculation:
                self._speculative_entered += 1
                self._speculative_waiting[frame.id] = self._speculative_entered
            elif isinstance(frame, (EagerEndOfTurnCancelFrame, InterruptionFrame)):
                self._speculative_void_through = self._speculative_entered
        await super().queue_frame(frame, direction, callback)  # type: ignore[misc]

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Drop a speculative context withdrawn before it started; process anything else."""
        if isinstance(frame, LLMContextFrame) and frame.speculation:
            seq = self._speculative_waiting.pop(frame.id, None)
            if seq is not None and seq <= self._speculative_void_through:
                self.dropped_withdrawn_contexts += 1
                logger.debug(f"{self}: dropping a speculative context withdrawn while queued")
                return
        await super().process_frame(frame, direction)  # type: ignore[misc]
