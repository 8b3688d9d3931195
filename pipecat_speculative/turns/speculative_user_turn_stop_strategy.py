"""A user turn stop strategy that speculates for any STT, wrapped around any commit rule.

Why a wrapper: deciding *when the turn is over* (a speech timeout, smart-turn, Flux's EndOfTurn)
and deciding *when to bet on it early* are separate questions. Pipecat already ships good answers
to the first; this strategy wraps one of them (the commit rule) and adds the second. The inner
strategy keeps deciding the commit; its ``inference triggered`` / ``stopped`` events are
intercepted and turned into "adopt the speculation" or "withdraw it and run a normal inference".

Everything goes through Pipecat's public triggers, so the LLM service's SpeculationGate does the
holding and releasing:

- start: ``trigger_user_turn_inference_triggered(speculation=UserTurnSpeculation(text))``
- withdraw: ``trigger_user_turn_speculation_cancelled()`` (broadcast as ``EagerEndOfTurnCancelFrame``)
- adopt: ``trigger_user_turn_finalized(confirms_speculation=True)`` (no second inference)

All decisions are made by :class:`~pipecat_speculative.turns.speculation_planner.SpeculationPlanner`;
this class only feeds it frames and timer expiries and executes what it returns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from loguru import logger
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    EagerTranscriptionFrame,
    ErrorFrame,
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.services.llm_service import LLMService
from pipecat.turns.types import ProcessFrameResult, UserTurnSpeculation
from pipecat.turns.user_stop.base_user_turn_stop_strategy import (
    BaseUserTurnStopStrategy,
    UserTurnStoppedParams,
)
from pipecat.turns.user_stop.eager_match_policy import EagerMatchPolicy
from pipecat.turns.user_stop.eager_user_turn_stop_strategy import EagerUserTurnStopStrategy

from pipecat_speculative.frames import SpeculationProgressFrame
from pipecat_speculative.turns.adaptive_debounce import AdaptiveDebounce
from pipecat_speculative.turns.free_patience_user_turn_stop_strategy import (
    FreePatienceUserTurnStopStrategy,
)
from pipecat_speculative.turns.session_ending_frame import (
    SessionCancellingFrame,
    SessionEndingFrame,
)
from pipecat_speculative.turns.speculation_planner import (
    AdoptSpeculation,
    ArmTimer,
    CancelTimer,
    DebounceChanged,
    FinalizeCommit,
    PlannerAction,
    RunInference,
    SpeculationAccounted,
    SpeculationPlanner,
    SpeculativeTurnParams,
    StartSpeculation,
    TimerKind,
    TurnCommitted,
    WithdrawSpeculation,
)

__all__ = ["SpeculativeUserTurnStopStrategy"]


class SpeculativeUserTurnStopStrategy(BaseUserTurnStopStrategy):
    """Speculates on pauses for any STT; a wrapped commit rule decides when the turn ends.

    Events (handlers receive the strategy first, pipecat style):

    - ``on_speculation_started(strategy, record: SpeculationRecord)``
    - ``on_speculation_withdrawn(strategy, record)`` (``record.withdrawal_reason`` says why)
    - ``on_speculation_adopted(strategy, record)``
    - ``on_user_turn_committed(strategy, commit: UserTurnCommit)``
    - ``on_debounce_changed(strategy, change: DebounceChange)``

    With an inner :class:`~pipecat.turns.user_stop.EagerUserTurnStopStrategy` (Deepgram Flux's
    eager end of turn) the inner strategy speculates itself; this one then only accounts for those
    speculations and stays out of the way, rather than betting twice.

    Session end: Pipecat's aggregator flushes an open turn into a fresh inference before its
    strategies see the ``EndFrame``/``CancelFrame``. Place a
    :class:`~pipecat_speculative.turns.transcription_guard.TranscriptionGuard` before the
    aggregator: it announces the end, and a speculation still held is then withdrawn
    (``turn_ended``) and the turn closed without that second inference.
    """

    EVENTS: tuple[str, ...] = (
        "on_speculation_started",
        "on_speculation_withdrawn",
        "on_speculation_adopted",
        "on_user_turn_committed",
        "on_debounce_changed",
    )
    """The events the strategy emits (handlers run synchronously, in order)."""

    def __init__(
        self,
        *,
        commit_strategy: BaseUserTurnStopStrategy | None = None,
        params: SpeculativeTurnParams | None = None,
        match_policy: EagerMatchPolicy | None = None,
        debounce: AdaptiveDebounce | None = None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs,
    ):
        """Initialize the strategy.

        Args:
            commit_strategy: The rule that decides the turn is over. Defaults to
                :class:`FreePatienceUserTurnStopStrategy` (a 0.6 s silence floor; with
                ``params.hold_commit_until_ready`` the commit then waits for the held answer). Pass Pipecat's ``SpeechTimeoutUserTurnStopStrategy`` or
                ``TurnAnalyzerUserTurnStopStrategy`` for a fixed timeout or smart-turn.
            params: Bounds and behaviour (speculation timeout, per-turn cap, debounce tuning).
            match_policy: Compares committed and speculated text at commit. Defaults to Pipecat's
                ``NormalizedMatch``.
            debounce: A speculation-delay controller to share; built from ``params`` otherwise.
            clock: Monotonic seconds; injectable for tests.
            **kwargs: Forwarded to ``BaseUserTurnStopStrategy``.
        """
        super().__init__(**kwargs)
        self._inner = commit_strategy or FreePatienceUserTurnStopStrategy()
        params = params or SpeculativeTurnParams()
        if isinstance(self._inner, EagerUserTurnStopStrategy) and params.own_speculation:
            params = SpeculativeTurnParams(**{**params.__dict__, "own_speculation": False})
        self._planner = SpeculationPlanner(params, match_policy=match_policy, debounce=debounce)
        self._clock = clock
        self._timers: dict[TimerKind, asyncio.Task] = {}
        # The commit in progress: whether it adopts the speculation. Set just before asking the
        # controller to finalize; the controller calls handle_user_turn_stopped only if it accepts.
        self._pending_commit: bool | None = None
        # VAD state, set before any await in process_frame: the commit rule's timer can fire while
        # this strategy is still handling a VAD start the rule has not seen yet.
        self._vad_speaking = False
        # The commit rule's stop, while the planner holds it until the answer is ready.
        self._held_stop: UserTurnStoppedParams | None = None
        # Set when the session end is announced: no timer may start a speculation after it.
        self._session_ended = False

        for event in self.EVENTS:
            self._register_event_handler(event, sync=True)

    # ------------------------------------------------------------------ public state

    @property
    def commit_strategy(self) -> BaseUserTurnStopStrategy:
        """The wrapped rule deciding when the turn is over."""
        return self._inner

    @property
    def planner(self) -> SpeculationPlanner:
        """The decision core (its counters: ``started``, ``adopted``, ``withdrawn``)."""
        return self._planner

    @property
    def debounce(self) -> AdaptiveDebounce:
        """The adaptive speculation delay."""
        return self._planner.debounce

    @property
    def resolves_proposed_turn_stop_frames(self) -> bool:
        """Whatever the commit rule does with proposals."""
        return self._inner.resolves_proposed_turn_stop_frames

    def observe_answer_readiness(self, secs: float):
        """Feed a measured speculation start → answer ready duration, seconds.

        Optional: the planner measures readiness itself from the
        :class:`~pipecat_speculative.frames.SpeculationProgressFrame` a speculation-aware LLM
        service reports. The estimate is only used where readiness cannot be observed.
        """
        self._planner.observe_readiness(secs)

    def seed_answer_readiness(self, secs: float):
        """Set the readiness prior before any turn is measured (e.g. from warmup timings)."""
        self._planner.seed_readiness(secs)

    # ------------------------------------------------------------------ lifecycle

    async def setup(self, setup: FrameProcessorSetup):
        """Set up this strategy and the commit rule, and listen to the rule's events."""
        await super().setup(setup)
        self._session_ended = False
        await self._inner.setup(setup)
        self._inner.add_event_handler("on_push_frame", self._on_inner_push_frame)
        self._inner.add_event_handler("on_broadcast_frame", self._on_inner_broadcast_frame)
        self._inner.add_event_handler(
            "on_user_turn_inference_triggered", self._on_inner_inference_triggered
        )
        self._inner.add_event_handler(
            "on_user_turn_speculation_cancelled", self._on_inner_speculation_cancelled
        )
        self._inner.add_event_handler("on_user_turn_stopped", self._on_inner_stopped)

    async def cleanup(self):
        """Cancel every timer and clean up the commit rule."""
        await super().cleanup()
        for kind in list(self._timers):
            await self._cancel_timer(kind)
        self._inner.remove_event_handler("on_push_frame", self._on_inner_push_frame)
        self._inner.remove_event_handler("on_broadcast_frame", self._on_inner_broadcast_frame)
        self._inner.remove_event_handler(
            "on_user_turn_inference_triggered", self._on_inner_inference_triggered
        )
        self._inner.remove_event_handler(
            "on_user_turn_speculation_cancelled", self._on_inner_speculation_cancelled
        )
        self._inner.remove_event_handler("on_user_turn_stopped", self._on_inner_stopped)
        await self._inner.cleanup()

    async def handle_user_turn_started(self):
        """Arm for a new turn."""
        self._pending_commit = None
        await self._execute(self._planner.turn_started(self._clock()))
        await self._inner.handle_user_turn_started()

    async def handle_user_turn_stopped(self):
        """The controller ended the turn: record the commit, or withdraw what is left open.

        Called for every turn end, whoever decided it. A commit this strategy asked for is only
        recorded here, once the controller has accepted it (it refuses while the user speaks);
        any other end (the watchdog, session end) withdraws an unresolved speculation.
        """
        now = self._clock()
        adopt, self._pending_commit = self._pending_commit, None
        self._held_stop = None
        await self._inner.handle_user_turn_stopped()
        if adopt is not None:
            await self._execute(self._planner.commit(now, adopt=adopt))
        await self._execute(self._planner.turn_stopped(now))

    # ------------------------------------------------------------------ frames

    async def process_frame(self, frame: Frame) -> ProcessFrameResult | None:
        """Feed the planner, then the commit rule (which may commit on this very frame)."""
        now = self._clock()
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._vad_speaking = True
            await self._execute(self._planner.vad_started(now))
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._vad_speaking = False
            await self._execute(self._planner.vad_stopped(now))
        elif isinstance(frame, TranscriptionFrame):
            await self._execute(
                self._planner.final_transcript(
                    now, frame.text, includes_inter_part_spaces=frame.includes_inter_frame_spaces
                )
            )
        elif isinstance(frame, InterimTranscriptionFrame):
            await self._execute(self._planner.interim_transcript(now, frame.text))
        elif isinstance(frame, SpeculationProgressFrame):
            await self._execute(
                self._planner.speculation_progress(now, frame.stage, frame.user_text)
            )
        elif isinstance(frame, EagerEndOfTurnCancelFrame):
            await self._execute(self._planner.speculation_withdrawn_elsewhere(now))
        elif isinstance(frame, EagerTranscriptionFrame) and self._planner.speculation is not None:
            # A new bet while the last is open: its withdrawal overtook it (see
            # SpeculationPlanner.external_speculation_started). The commit rule forgets that bet
            # first, so it does not lose track of the timer it keeps for it.
            await self._inner.process_frame(EagerEndOfTurnCancelFrame())
        elif isinstance(frame, (SessionEndingFrame, SessionCancellingFrame)):
            await self._end_session()
        elif isinstance(frame, ErrorFrame) and isinstance(frame.processor, LLMService):
            if self._planner.speculation is not None:
                logger.warning(
                    f"{self}: the LLM failed during speculation "
                    f"#{self._planner.speculation.id} ({frame.error}); the commit will run "
                    "a fresh inference"
                )
            await self._execute(self._planner.speculation_failed(now))
        return await self._inner.process_frame(frame)

    # ------------------------------------------------------------------ commit rule events

    async def _on_inner_push_frame(self, _inner, frame, direction):
        await self.push_frame(frame, direction)

    async def _on_inner_broadcast_frame(self, _inner, frame_cls, **kwargs):
        await self.broadcast_frame(frame_cls, **kwargs)

    async def _on_inner_inference_triggered(
        self, _inner, speculation: UserTurnSpeculation | None = None
    ):
        if speculation is not None:
            # The commit rule speculates itself (Flux eager end of turn): account and pass on.
            now = self._clock()
            await self._execute(self._planner.external_speculation_started(now, speculation.text))
            await self.trigger_user_turn_inference_triggered(speculation=speculation)
        # Otherwise nothing yet: the commit rule's stop follows, and the commit is decided there,
        # in one step with the controller, so that a turn the controller refuses to end is not
        # half-committed. The aggregator runs the inference at the stop unless it adopts.

    async def _on_inner_speculation_cancelled(self, _inner):
        await self._execute(self._planner.external_speculation_cancelled(self._clock()))
        await self.trigger_user_turn_speculation_cancelled()

    async def _on_inner_stopped(self, _inner, params: UserTurnStoppedParams):
        now = self._clock()
        if params.confirms_speculation and self._planner.speculation is None:
            # The commit rule confirms a speculation this strategy withdrew (the LLM failed
            # during it): confirming would release nothing. Answer with a fresh inference.
            logger.debug(f"{self}: the confirmed speculation was withdrawn, running inference")
            self._pending_commit = False
            await self.trigger_user_turn_finalized(
                enable_user_speaking_frames=params.enable_user_speaking_frames,
                confirms_speculation=False,
            )
            self._pending_commit = None
            return
        if params.confirms_speculation:
            # The commit rule confirmed a speculation it started itself (Flux eager end of turn).
            self._pending_commit = None
            await self._execute(self._planner.external_speculation_adopted(now))
            await self.trigger_user_turn_finalized(
                enable_user_speaking_frames=params.enable_user_speaking_frames,
                confirms_speculation=True,
            )
            return
        if self._ignore_commit_while_speaking():
            return
        self._held_stop = params
        actions = self._planner.commit_requested(now)
        if self._planner.commit_held:
            logger.debug(f"{self}: commit held until the speculative answer is ready")
        await self._execute(actions)

    async def _finalize_commit(self, reason: str):
        """Commit the turn the rule asked to end (now, or at the end of the hold)."""
        params, self._held_stop = self._held_stop, None
        if params is None or self._ignore_commit_while_speaking():
            return
        now = self._clock()
        logger.debug(f"{self}: committing ({reason})")
        adopt = self._planner.commit_adopts()
        if not adopt:
            # Withdrawn before the turn end is broadcast, or the gate would release it.
            await self._execute(self._planner.withdraw_mismatch(now))
        self._pending_commit = adopt
        await self.trigger_user_turn_finalized(
            enable_user_speaking_frames=params.enable_user_speaking_frames,
            confirms_speculation=adopt,
        )
        if self._pending_commit is not None:
            # The controller refused to end the turn; the commit rule will fire again.
            logger.debug(f"{self}: the controller kept the turn open, commit dropped")
            self._pending_commit = None

    async def _end_session(self):
        """End the turn without an answer before the aggregator flushes it into an inference.

        Finalizing as a confirmation makes the aggregator write the user's words to the context
        without running the LLM; :meth:`handle_user_turn_stopped` (called by the controller
        before it releases anything) withdraws the speculation first, with reason
        ``turn_ended``, so its held answer is discarded, not heard.
        """
        # A timer still armed (the debounce after the last VAD stop) would start a speculation
        # after the aggregator's session-end flush, and nothing would ever resolve it.
        self._session_ended = True
        for kind in list(self._timers):
            await self._cancel_timer(kind)
        if self._planner.speculation is None:
            return  # nothing held: Pipecat's own session-end flush is right
        logger.debug(
            f"{self}: session ending with speculation #{self._planner.speculation.id} open, "
            "withdrawing it"
        )
        self._held_stop = None
        self._pending_commit = None
        await self.trigger_user_turn_finalized(confirms_speculation=True)
        if self._planner.speculation is not None:
            # The controller kept the turn open (the user is speaking): withdraw anyway, so the
            # speculation is resolved and its answer is never released.
            await self._execute(self._planner.turn_stopped(self._clock()))

    def _ignore_commit_while_speaking(self) -> bool:
        """Whether the commit rule fired on a pause the user has already ended.

        Pipecat's controller never finalizes a turn while the user speaks, but it would still run
        the inference and this strategy would still adopt: the answer would then be held for a
        turn that goes on. The rule re-arms on the next VAD stop, so dropping this one is safe.
        """
        if self._vad_speaking:
            logger.debug(f"{self}: commit rule fired while the user is speaking, ignored")
            return True
        return False

    # ------------------------------------------------------------------ actions

    async def _execute(self, actions: list[PlannerAction]):
        """Carry out the planner's actions, in order."""
        for action in actions:
            if isinstance(action, StartSpeculation):
                await self._call_event_handler("on_speculation_started", action.record)
                if self._planner.params.own_speculation:
                    logger.debug(
                        f"{self}: speculating #{action.record.id} after "
                        f"{action.record.delay_secs:.2f} s: [{action.record.text}]"
                    )
                    await self.trigger_user_turn_inference_triggered(
                        speculation=UserTurnSpeculation(text=action.record.text)
                    )
            elif isinstance(action, WithdrawSpeculation):
                logger.debug(
                    f"{self}: withdrawing speculation #{action.record.id} "
                    f"({action.record.withdrawal_reason})"
                )
                await self.trigger_user_turn_speculation_cancelled()
                await self._call_event_handler("on_speculation_withdrawn", action.record)
            elif isinstance(action, SpeculationAccounted):
                await self._call_event_handler("on_speculation_withdrawn", action.record)
            elif isinstance(action, AdoptSpeculation):
                logger.debug(f"{self}: commit adopts speculation #{action.record.id}")
                await self._call_event_handler("on_speculation_adopted", action.record)
            elif isinstance(action, RunInference):
                pass  # The aggregator runs it at the turn end (confirms_speculation=False).
            elif isinstance(action, FinalizeCommit):
                await self._finalize_commit(action.reason)
            elif isinstance(action, TurnCommitted):
                await self._call_event_handler("on_user_turn_committed", action.commit)
            elif isinstance(action, DebounceChanged):
                await self._call_event_handler("on_debounce_changed", action.change)
            elif isinstance(action, ArmTimer):
                await self._arm_timer(action.kind, action.delay_secs)
            elif isinstance(action, CancelTimer):
                await self._cancel_timer(action.kind)

    async def _arm_timer(self, kind: TimerKind, delay: float):
        await self._cancel_timer(kind)
        if self._session_ended:
            return
        self._timers[kind] = self.task_manager.create_task(
            self._run_timer(kind, delay), f"{self}::{kind.value}_timer"
        )

    async def _cancel_timer(self, kind: TimerKind):
        task = self._timers.pop(kind, None)
        if task is not None and task is not asyncio.current_task():
            await self.task_manager.cancel_task(task)

    async def _run_timer(self, kind: TimerKind, delay: float):
        await asyncio.sleep(delay)
        # Forget the handle first: the actions below may arm a timer of the same kind.
        if self._timers.get(kind) is asyncio.current_task():
            del self._timers[kind]
        await self._execute(self._planner.timer_fired(self._clock(), kind))
