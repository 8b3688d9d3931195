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

It also keeps a failed speculation from leaving an adopted turn silent. A speculative inference
that fails before producing any text (a 5xx after the client's retries, a dropped stream) holds
an empty response; if the turn is then confirmed, the gate releases nothing and the bot says
nothing, although the service may well answer now. Such an inference is run once more, as an
ordinary inference on the same context, when its turn is confirmed (at once if it already was).
A withdrawal or an interruption cancels that retry; an inference that produced text is never
re-run (part of it may have been heard), nor one refused for good (401/403/400: a revoked key
fails the same way again). This strategy's planner also withdraws a speculation
the LLM failed on before the commit, so the commit's own inference is the retry then.

Last, it keeps the gate holding a speculation whose turn is open when the turn frames reach the
service out of order. The gate decides from the last turn frame it passed: after a
``UserStoppedSpeakingFrame`` it treats any speculation as answering a turn that is over and lets
it through. But a turn can start while the previous one is being committed (a sound right at the
commit), and the frames then arrive as start(2), stop(1): the gate thinks no turn is open, and a
speculation in turn 2 is spoken before its commit, even after it was withdrawn (reproduced by the
pipeline property test). The mixin counts starts and stops as they enter and, while a turn is
open, reminds the gate of it before a speculation starts.

Finally, it tells the turn strategy how far a held answer has come, with a
:class:`~pipecat_speculative.frames.SpeculationProgressFrame` pushed upstream: ``STARTED`` when
a speculative inference begins, ``FIRST_SENTENCE`` once the held response holds its first
complete sentence (or ended without one). Until then committing the turn gains nothing, so the
strategy commits at that moment: as late as costs no latency.
"""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    SystemFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameCallback, FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.turns.speculation_gate import SpeculationState
from pipecat.utils.errors import classify_http_exception
from pipecat.utils.string import match_endofsentence

from pipecat_speculative.frames import (
    SPECULATIVE_RESPONSE_KEY,
    SpeculationProgressFrame,
    SpeculationStage,
)
from pipecat_speculative.pipecat_compat import mark_turn_open_at_gate, speculation_gate

__all__ = ["SpeculationAwareLLMMixin"]

_MAX_WAITING_SPECULATIONS = 64
"""Speculative contexts remembered as waiting in the queue; older entries were flushed."""


@dataclass
class _SpeculativeAttempt:
    """What happened to the speculative inference in progress."""

    frame: LLMContextFrame
    failed: bool = False
    permanent: bool = False
    produced_text: bool = False
    confirmed: bool = False
    withdrawn: bool = False
    held_text: str = ""
    sentence_reported: bool = False


def last_user_text(context: LLMContext) -> str:
    """The text of the last user message of a context (what a speculation answers)."""
    for message in reversed(context.messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
        return ""
    return ""


def holds_first_sentence(text: str) -> bool:
    """Whether ``text`` holds a complete first sentence and the start of what follows.

    Pipecat's sentence aggregator releases a sentence once the next word shows it really ended
    (``Dr.`` does not end one), so the sentence counts as ready when something follows it.
    """
    end = match_endofsentence(text)
    return end > 0 and bool(text[end:].strip())


class SpeculationAwareLLMMixin:
    """Mixin for an ``LLMService`` subclass: ``class MyLLM(SpeculationAwareLLMMixin, OpenAILLMService)``.

    Must come before the service class in the bases, so its ``queue_frame`` and ``process_frame``
    run first.
    """

    def __init__(self, *args, speculative_tts: bool = False, **kwargs):
        """Initialize the mixin and forward everything else to the service.

        Args:
            *args: Forwarded to the service.
            speculative_tts: Let a speculative response through to the TTS instead of holding
                it here, marked so that a
                :class:`~pipecat_speculative.processors.speculative_output_gate.SpeculativeOutputGate`
                after the TTS holds its audio until the commit. The gate here still tracks the
                speculation, so a withdrawal stops the inference and a tool call still never
                runs speculatively.
            **kwargs: Forwarded to the service.
        """
        super().__init__(*args, **kwargs)
        self._speculative_tts = speculative_tts
        # Sequence number of the last speculative context that entered the queue.
        self._speculative_entered = 0
        # Speculative contexts with a sequence number up to this one are withdrawn.
        self._speculative_void_through = 0
        # Frame id -> sequence number, for speculative contexts not yet processed.
        self._speculative_waiting: dict[int, int] = {}
        self.dropped_withdrawn_contexts = 0
        # The speculative inference running now, and a failed one waiting for its confirmation.
        self._attempt: _SpeculativeAttempt | None = None
        self._retry_on_confirm: LLMContextFrame | None = None
        self.retried_failed_speculations = 0
        # User turns started and not yet stopped, counted as their frames enter.
        self._open_turns = 0

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
                # An interruption flushes queued contexts without processing them, so their
                # entries are never popped: keep only the newest (none waits behind this many).
                while len(self._speculative_waiting) > _MAX_WAITING_SPECULATIONS:
                    del self._speculative_waiting[next(iter(self._speculative_waiting))]
            elif isinstance(frame, (EagerEndOfTurnCancelFrame, InterruptionFrame)):
                self._speculative_void_through = self._speculative_entered
                if self._attempt is not None:
                    self._attempt.withdrawn = True
                self._retry_on_confirm = None
            elif isinstance(frame, UserStartedSpeakingFrame):
                self._open_turns += 1
            elif isinstance(frame, UserStoppedSpeakingFrame):
                self._open_turns = max(0, self._open_turns - 1)
                if self._attempt is not None:
                    self._attempt.confirmed = True
                retry, self._retry_on_confirm = self._retry_on_confirm, None
                if retry is not None:
                    await self._retry(retry, "its turn was confirmed")
        await super().queue_frame(frame, direction, callback)  # type: ignore[misc]

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Drop a speculative context withdrawn before it started; process anything else."""
        if isinstance(frame, LLMContextFrame) and frame.speculation:
            seq = self._speculative_waiting.pop(frame.id, None)
            if seq is not None and seq <= self._speculative_void_through:
                self.dropped_withdrawn_contexts += 1
                logger.debug(f"{self}: dropping a speculative context withdrawn while queued")
                return
            if self._open_turns > 0:
                # A turn is open whatever the last turn frame was: let the gate know before it
                # decides whether this speculation is held. Only the gate's own bookkeeping runs;
                # nothing is pushed.
                mark_turn_open_at_gate(self)  # type: ignore[arg-type]
            self._attempt = attempt = _SpeculativeAttempt(frame)
            await self._report_progress(attempt, SpeculationStage.STARTED)
            try:
                await super().process_frame(frame, direction)  # type: ignore[misc]
            finally:
                self._attempt = None
            if attempt.permanent:
                logger.error(
                    f"{self}: a speculative inference was refused for good (the key or the "
                    "request); not running it again"
                )
            elif attempt.failed and not attempt.produced_text and not attempt.withdrawn:
                if attempt.confirmed:
                    await self._retry(frame, "its turn was already confirmed")
                else:
                    self._retry_on_confirm = frame
            return
        await super().process_frame(frame, direction)  # type: ignore[misc]

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Note text produced by the speculative inference in progress, and its readiness."""
        attempt = self._attempt
        if attempt is not None and isinstance(frame, LLMTextFrame):
            attempt.produced_text = True
        if self._passes_to_speculative_tts(attempt, frame, direction):
            if isinstance(frame, LLMFullResponseStartFrame):
                frame.metadata[SPECULATIVE_RESPONSE_KEY] = last_user_text(attempt.frame.context)
            # Past the gate (its bookkeeping is untouched): the output gate holds it after the TTS.
            await super(LLMService, self).push_frame(frame, direction)  # type: ignore[misc]
            return
        await super().push_frame(frame, direction)  # type: ignore[misc]
        if (
            attempt is None
            or attempt.sentence_reported
            or direction != FrameDirection.DOWNSTREAM
            or speculation_gate(self).state != SpeculationState.HOLDING  # type: ignore[arg-type]
        ):
            return
        if isinstance(frame, LLMTextFrame):
            attempt.held_text += frame.text
            ready = holds_first_sentence(attempt.held_text)
        else:
            ready = isinstance(frame, LLMFullResponseEndFrame)
        if ready:
            attempt.sentence_reported = True
            await self._report_progress(attempt, SpeculationStage.FIRST_SENTENCE)

    def _passes_to_speculative_tts(
        self, attempt: _SpeculativeAttempt | None, frame: Frame, direction: FrameDirection
    ) -> bool:
        if not self._speculative_tts or attempt is None or direction != FrameDirection.DOWNSTREAM:
            return False
        if isinstance(frame, SystemFrame):
            return False
        gate = speculation_gate(self)  # type: ignore[arg-type]
        return gate.is_speculating and gate.state == SpeculationState.OPEN

    async def _report_progress(self, attempt: _SpeculativeAttempt, stage: SpeculationStage):
        progress = SpeculationProgressFrame(
            stage=stage, user_text=last_user_text(attempt.frame.context)
        )
        await self.push_frame(progress, FrameDirection.UPSTREAM)

    async def push_error(self, *args, **kwargs):
        """Note a failure of the speculative inference in progress, then report it as usual."""
        if self._attempt is not None:
            self._attempt.failed = True
            exception = kwargs.get("exception", args[1] if len(args) > 1 else None)
            if exception is not None and classify_http_exception(exception).is_permanent:
                # A refused key or request fails the same way again: no retry on confirm.
                self._attempt.permanent = True
        await super().push_error(*args, **kwargs)  # type: ignore[misc]

    async def _retry(self, failed: LLMContextFrame, why: str):
        self.retried_failed_speculations += 1
        logger.warning(
            f"{self}: a speculative inference failed before any text and {why}; "
            "running it again as an ordinary inference"
        )
        retry = LLMContextFrame(context=failed.context)
        await self.queue_frame(retry, FrameDirection.DOWNSTREAM)
