"""The synchronous decision core of the speculative turn strategy.

It is fed what happens in a user turn (VAD, transcripts, timers, the commit decided by the commit
rule, the turn boundaries) and returns what the strategy must do, in order: start, withdraw or adopt
a speculation, run a normal inference, arm or cancel a timer. It never awaits and owns no task, so
every interleaving can be replayed in a test without a pipeline, and the processor shell only has to
execute the actions.

One turn, as the planner sees it::

    speech ....|VAD stop|<- delay ->|start(text)        |commit: text matches -> adopt
                        |           |<- final "...more" -> withdraw(extended) + start(longer text)
                        |           |<- VAD start + new words -> withdraw(resumed)
                        |           |<- VAD start, no words, VAD stop (a cough) -> kept
                        |           |<- timeout -> withdraw(timeout)

Rules that protect the invariants:

- A speculation only starts while the user is silent, after the delay, on a non-empty text that is
  exactly what the aggregator would commit now (built with Pipecat's ``concatenate_aggregated_text``
  from the same transcript frames), and within the bounds (per-turn cap, utterance length, not
  after a tool-call withdrawal in the same turn, not twice on a text that already timed out).
- Every speculation ends exactly once: adopted at commit, or withdrawn with a reason. The single
  exit is :meth:`SpeculationPlanner._resolve`.
- Resumed speech withdraws only once it carries new words (an interim or final transcript) or has
  lasted ``resume_withdraw_secs``; a noise blip that brings no words and stops again keeps the
  speculation, so a cough does not cost the turn its early answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pipecat.turns.user_stop.eager_match_policy import EagerMatchPolicy, NormalizedMatch
from pipecat.utils.string import TextPartForConcatenation, concatenate_aggregated_text

from pipecat_speculative.turns.adaptive_debounce import AdaptiveDebounce, DebounceParams
from pipecat_speculative.turns.speculation_events import (
    DebounceChange,
    SpeculationRecord,
    UserTurnCommit,
    WithdrawalReason,
)

__all__ = [
    "AdoptSpeculation",
    "ArmTimer",
    "CancelTimer",
    "DebounceChanged",
    "PlannerAction",
    "RunInference",
    "SpeculationPhase",
    "SpeculationPlanner",
    "SpeculationAccounted",
    "SpeculativeTurnParams",
    "StartSpeculation",
    "TimerKind",
    "TurnCommitted",
    "WithdrawSpeculation",
]


_MIN_BACKOFF_BASE_SECS = 0.1
"""Backoff starts from at least this delay, so a zero session delay still backs off."""


class SpeculationPhase(Enum):
    """Where the planner is within a pause.

    - ``IDLE``: the user is speaking, or nothing is pending.
    - ``DEBOUNCING``: silent after a VAD stop, waiting for the delay (or for text after it).
    - ``SPECULATING``: a speculation is in flight.
    """

    IDLE = "idle"
    DEBOUNCING = "debouncing"
    SPECULATING = "speculating"


class TimerKind(Enum):
    """The planner's timers, armed and cancelled through actions."""

    DEBOUNCE = "debounce"
    RESUME = "resume"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class SpeculativeTurnParams:
    """Bounds and behaviour of the speculative turn strategy.

    Parameters:
        debounce: The adaptive debounce (speculation delay) tuning.
        resume_withdraw_secs: Resumed speech that carries no words yet withdraws the speculation
            once it lasts this long (from the VAD start, itself ``start_secs`` into the speech).
            Shorter speech that stops again (a cough, a click) keeps the speculation.
        speculation_timeout_secs: A speculation unresolved for this long is withdrawn, so a commit
            rule that never fires cannot leave a response held (and the bot silent) forever.
        max_speculations_per_turn: Cap on speculations in one user turn: a speaker who keeps
            pausing mid-thought does not cost an inference per pause.
        max_utterance_words: No speculation once the turn text is longer than this: long
            monologues are rarely finished at a pause and cost the most tokens per guess.
        resume_backoff: Within one turn, every speculation withdrawn because the user resumed
            multiplies the wait before the next speculation of that turn by this factor (from
            at least 0.1 s, up to ``debounce.max_secs``). A speaker who has paused mid-thought
            once in a turn tends to again: backing off spends fewer inferences on their
            mid-thought pauses and keeps the per-turn cap from running out before the pause
            that really ends the turn (which then gets no speculation and pays the full
            inference after the commit). With free patience the commit waits as much longer,
            so a hesitant speaker also gets more time. Outcomes of backed-off speculations do
            not teach the debounce (they were not made at its delay), so one turn of thinking
            aloud cannot move the session delay by itself. 1.0 disables it.
        own_speculation: False leaves speculation to the commit strategy (Deepgram Flux's eager end
            of turn through Pipecat's ``EagerUserTurnStopStrategy``); the planner then only
            accounts for it.
    """

    debounce: DebounceParams = field(default_factory=DebounceParams)
    resume_withdraw_secs: float = 0.5
    speculation_timeout_secs: float = 5.0
    max_speculations_per_turn: int = 6
    max_utterance_words: int = 80
    resume_backoff: float = 1.5
    own_speculation: bool = True

    def __post_init__(self):
        if self.resume_withdraw_secs <= 0 or self.speculation_timeout_secs <= 0:
            raise ValueError("resume_withdraw_secs and speculation_timeout_secs must be > 0")
        if self.max_speculations_per_turn < 1 or self.max_utterance_words < 1:
            raise ValueError("max_speculations_per_turn and max_utterance_words must be >= 1")
        if self.resume_backoff < 1.0:
            raise ValueError(f"resume_backoff must be >= 1.0, got {self.resume_backoff}")


@dataclass(frozen=True)
class StartSpeculation:
    """Start a speculative inference on ``record.text``."""

    record: SpeculationRecord


@dataclass(frozen=True)
class WithdrawSpeculation:
    """Withdraw the speculation (``record.withdrawal_reason`` says why)."""

    record: SpeculationRecord


@dataclass(frozen=True)
class SpeculationAccounted:
    """A withdrawal someone else already performed: report it, do not perform it again."""

    record: SpeculationRecord


@dataclass(frozen=True)
class AdoptSpeculation:
    """The commit confirms the speculation: finalize the turn without a second inference."""

    record: SpeculationRecord


@dataclass(frozen=True)
class RunInference:
    """The commit needs an ordinary inference on the committed text."""


@dataclass(frozen=True)
class TurnCommitted:
    """The turn was committed (for observers)."""

    commit: UserTurnCommit


@dataclass(frozen=True)
class DebounceChanged:
    """The adaptive debounce changed the speculation delay (for observers)."""

    change: DebounceChange


@dataclass(frozen=True)
class ArmTimer:
    """(Re)arm a timer; the shell calls :meth:`SpeculationPlanner.timer_fired` when it expires."""

    kind: TimerKind
    delay_secs: float


@dataclass(frozen=True)
class CancelTimer:
    """Cancel a timer if it is armed."""

    kind: TimerKind


PlannerAction = (
    StartSpeculation
    | WithdrawSpeculation
    | SpeculationAccounted
    | AdoptSpeculation
    | RunInference
    | TurnCommitted
    | DebounceChanged
    | ArmTimer
    | CancelTimer
)


class SpeculationPlanner:
    """Decides when to start, re-start, adopt and withdraw speculations.

    Every method takes ``now`` (seconds, one monotonic clock) and returns the actions to execute in
    order. Methods never raise on unexpected orders (a stale timer, a commit without a pause, a
    transcript between turns): the frames of a live pipeline come in every order.
    """

    def __init__(
        self,
        params: SpeculativeTurnParams | None = None,
        *,
        match_policy: EagerMatchPolicy | None = None,
        debounce: AdaptiveDebounce | None = None,
    ):
        """Initialize the planner.

        Args:
            params: Bounds and behaviour.
            match_policy: Decides whether the committed text still matches the speculated one.
                Defaults to Pipecat's ``NormalizedMatch`` (case, punctuation and spacing ignored).
            debounce: The speculation-delay controller; one is built from ``params.debounce``.
        """
        self._params = params or SpeculativeTurnParams()
        self._match = match_policy or NormalizedMatch()
        self._debounce = debounce or AdaptiveDebounce(self._params.debounce)

        self._phase = SpeculationPhase.IDLE
        self._armed: set[TimerKind] = set()
        self._user_speaking = False
        self._parts: list[TextPartForConcatenation] = []
        # The VAD stop that began the current pause; None while speaking or unknown.
        self._pause_start: float | None = None
        # The VAD start of a resumption not yet confirmed by words or duration.
        self._resume_at: float | None = None
        self._debounce_elapsed = False
        self._speculation: SpeculationRecord | None = None

        self._turn = 0
        self._turn_speculations: list[SpeculationRecord] = []
        self._turn_resumptions = 0
        self._tool_blocked = False
        # A text whose speculation timed out or failed: not speculated on again this turn.
        self._blocked_text: str | None = None
        self._next_id = 1

        self.started = 0
        self.adopted = 0
        self.withdrawn: dict[WithdrawalReason, int] = {r: 0 for r in WithdrawalReason}

    # ------------------------------------------------------------------ state

    @property
    def params(self) -> SpeculativeTurnParams:
        """Bounds and behaviour in force."""
        return self._params

    @property
    def debounce(self) -> AdaptiveDebounce:
        """The speculation-delay controller."""
        return self._debounce

    @property
    def match_policy(self) -> EagerMatchPolicy:
        """The policy comparing committed and speculated text."""
        return self._match

    @property
    def phase(self) -> SpeculationPhase:
        """Where the planner is within the current pause."""
        return self._phase

    @property
    def speculation_delay_secs(self) -> float:
        """The silence after VAD stop the next speculation of this turn waits for.

        The adaptive debounce's session delay, backed off by ``resume_backoff`` for every
        speculation of this turn that the user's resumed speech withdrew.
        """
        delay = self._debounce.delay_secs
        if not self._turn_resumptions or self._params.resume_backoff == 1.0:
            return delay
        ceiling = max(delay, self._debounce.params.max_secs)
        backed_off = max(delay, _MIN_BACKOFF_BASE_SECS) * (
            self._params.resume_backoff**self._turn_resumptions
        )
        return min(ceiling, backed_off)

    @property
    def speculation(self) -> SpeculationRecord | None:
        """The speculation in flight, if any."""
        return self._speculation

    @property
    def text(self) -> str:
        """The user text the aggregator would commit now."""
        return concatenate_aggregated_text(self._parts)

    @property
    def turn(self) -> int:
        """Index of the current user turn."""
        return self._turn

    @property
    def cancel_rate(self) -> float | None:
        """Withdrawn / started over the session, tool-call withdrawals excluded."""
        counted = sum(n for r, n in self.withdrawn.items() if r.counts_toward_cancel_rate)
        total = counted + self.adopted
        return counted / total if total else None

    # ------------------------------------------------------------------ events

    def turn_started(self, now: float) -> list[PlannerAction]:
        """A user turn started: per-turn bounds reset (the text does not; see turn_stopped)."""
        self._turn_speculations = []
        self._turn_resumptions = 0
        self._tool_blocked = False
        self._blocked_text = None
        return []

    def turn_stopped(self, now: float) -> list[PlannerAction]:
        """The turn ended, by the commit or any other way (watchdog, session end)."""
        actions: list[PlannerAction] = []
        if self._speculation is not None:
            actions += self._resolve(now, WithdrawalReason.TURN_ENDED)
        actions += self._cancel_timers(*TimerKind)
        self._phase = SpeculationPhase.IDLE
        self._parts = []
        self._pause_start = None
        self._resume_at = None
        self._debounce_elapsed = False
        self._turn_resumptions = 0
        self._turn += 1
        return actions

    def vad_started(self, now: float) -> list[PlannerAction]:
        """VAD says the user is speaking."""
        self._user_speaking = True
        actions = self._cancel_timers(TimerKind.DEBOUNCE)
        self._debounce_elapsed = False
        if self._phase == SpeculationPhase.DEBOUNCING:
            self._phase = SpeculationPhase.IDLE
        if self._pause_start is not None:
            self._resume_at = now
            actions += self._arm(TimerKind.RESUME, self._params.resume_withdraw_secs)
        return actions

    def vad_stopped(self, now: float) -> list[PlannerAction]:
        """VAD says the user stopped speaking (after its own ``stop_secs``)."""
        self._user_speaking = False
        actions: list[PlannerAction] = []
        if self._resume_at is not None:
            # Speech that brought no words and stopped: a blip. The pause it interrupted goes on.
            self._resume_at = None
            actions += self._cancel_timers(TimerKind.RESUME)
        else:
            self._pause_start = now
        if self._phase == SpeculationPhase.SPECULATING or not self._params.own_speculation:
            return actions
        self._phase = SpeculationPhase.DEBOUNCING
        self._debounce_elapsed = False
        actions += self._arm(TimerKind.DEBOUNCE, self.speculation_delay_secs)
        return actions

    def interim_transcript(self, now: float, text: str) -> list[PlannerAction]:
        """An interim transcript: words are arriving."""
        if text.strip() and self._user_speaking and self._resume_at is not None:
            return self._confirm_resumption(now)
        return []

    def final_transcript(
        self, now: float, text: str, *, includes_inter_part_spaces: bool = False
    ) -> list[PlannerAction]:
        """A final transcript segment, as the aggregator will append it."""
        if not text.strip():
            # The aggregator drops blank transcripts, so they never change the committed text.
            return []
        self._parts.append(TextPartForConcatenation(text, includes_inter_part_spaces))
        actions: list[PlannerAction] = []
        if self._user_speaking and self._resume_at is not None:
            actions += self._confirm_resumption(now)
        if self._user_speaking:
            return actions

        if self._phase == SpeculationPhase.SPECULATING and self._speculation is not None:
            if not self._match.matches(self._speculation.text, self.text):
                actions += self._resolve(now, WithdrawalReason.EXTENDED)
                actions += self._maybe_start(now)
        elif self._phase == SpeculationPhase.DEBOUNCING and self._debounce_elapsed:
            actions += self._maybe_start(now)
        return actions

    def timer_fired(self, now: float, kind: TimerKind) -> list[PlannerAction]:
        """A timer armed by an :class:`ArmTimer` action expired."""
        if kind not in self._armed:
            return []  # Cancelled or re-armed meanwhile: stale.
        self._armed.discard(kind)
        if kind is TimerKind.DEBOUNCE:
            if self._phase != SpeculationPhase.DEBOUNCING or self._user_speaking:
                return []
            self._debounce_elapsed = True
            return self._maybe_start(now)
        if kind is TimerKind.RESUME:
            if self._user_speaking and self._resume_at is not None:
                return self._confirm_resumption(now)
            return []
        # TIMEOUT
        if self._speculation is None:
            return []
        self._blocked_text = self._speculation.text
        return self._resolve(now, WithdrawalReason.TIMEOUT)

    def commit_adopts(self) -> bool:
        """Whether a commit now would adopt the speculation in flight (no state change)."""
        speculation = self._speculation
        return speculation is not None and self._match.matches(speculation.text, self.text)

    def withdraw_mismatch(self, now: float) -> list[PlannerAction]:
        """Withdraw the speculation in flight because the commit will not adopt it."""
        if self._speculation is None:
            return []
        return self._resolve(now, WithdrawalReason.MISMATCH)

    def commit(self, now: float, *, adopt: bool | None = None) -> list[PlannerAction]:
        """The turn was committed: adopt the speculation or run inference.

        Args:
            now: Clock time of the commit.
            adopt: The verdict already acted on (from :meth:`commit_adopts`); None decides now.
        """
        actions = self._cancel_timers(TimerKind.DEBOUNCE, TimerKind.RESUME)
        if self._pause_start is not None:
            self._debounce.record_pause(now - self._pause_start, resumed=False)
        self._pause_start = None
        self._resume_at = None
        self._debounce_elapsed = False

        text = self.text
        adopted: SpeculationRecord | None = None
        speculation = self._speculation
        if adopt is None:
            adopt = self.commit_adopts()
        if speculation is not None and adopt:
            adopted = speculation
            actions += self._resolve(now, None)
            actions.append(AdoptSpeculation(adopted))
        else:
            if speculation is not None:
                actions += self._resolve(now, WithdrawalReason.MISMATCH)
            actions.append(RunInference())
        actions.append(
            TurnCommitted(
                UserTurnCommit(
                    turn=self._turn,
                    text=text,
                    committed_at=now,
                    adopted=adopted,
                    speculations=tuple(self._turn_speculations),
                )
            )
        )
        # The aggregator writes the text to the context now; what follows belongs to what comes next.
        self._parts = []
        self._phase = SpeculationPhase.IDLE
        return actions

    def speculation_withdrawn_elsewhere(self, now: float) -> list[PlannerAction]:
        """Someone else withdrew the speculation in flight (an ``EagerEndOfTurnCancelFrame``).

        With the planner's own speculation this is the LLM service refusing to run a tool call
        speculatively. The planner forgets the speculation (so the commit runs a real inference,
        which then runs the tool) and stops speculating for the rest of the turn, since every new
        speculation would want the same tool. The withdrawal action it returns is harmless if the
        service already discarded the response, and needed if the frame actually answered an older
        speculation than the one in flight.

        With an external speculation (Flux), the service withdrew its eager end of turn because the
        user resumed.
        """
        if self._speculation is None:
            return []
        if self._params.own_speculation:
            self._tool_blocked = True
            return self._resolve(now, WithdrawalReason.TOOL_CALL)
        return self._resolve(now, WithdrawalReason.RESUMED, emit=False)

    def speculation_failed(self, now: float) -> list[PlannerAction]:
        """The LLM service reported an error while a speculation was in flight.

        Its held response is empty or cut short; adopting it at commit would leave the turn
        unanswered. The planner withdraws it (so the gate drops what it held) and does not
        speculate on the same text again this turn; the commit then runs a normal inference,
        which a transient failure (a 5xx, a dropped stream) lets the bot answer after all.
        """
        if self._speculation is None:
            return []
        self._blocked_text = self._speculation.text
        return self._resolve(now, WithdrawalReason.FAILED)

    def external_speculation_started(self, now: float, text: str) -> list[PlannerAction]:
        """The commit strategy started a speculation itself (Flux eager end of turn)."""
        actions: list[PlannerAction] = []
        if self._speculation is not None:
            actions += self._resolve(now, WithdrawalReason.EXTENDED, emit=False)
        record = self._new_record(now, text)
        self._speculation = record
        self._phase = SpeculationPhase.SPECULATING
        self.started += 1
        return [*actions, StartSpeculation(record)]

    def external_speculation_adopted(self, now: float) -> list[PlannerAction]:
        """The commit strategy confirmed its own speculation (it compared the texts itself)."""
        if self._speculation is None:
            return []
        speculation = self._speculation
        actions = self._resolve(now, None)
        actions += [
            AdoptSpeculation(speculation),
            TurnCommitted(
                UserTurnCommit(
                    turn=self._turn,
                    text=self.text or speculation.text,
                    committed_at=now,
                    adopted=speculation,
                    speculations=tuple(self._turn_speculations),
                )
            ),
        ]
        self._parts = []
        return actions

    def external_speculation_cancelled(self, now: float) -> list[PlannerAction]:
        """The commit strategy withdrew its own speculation (it already told the pipeline)."""
        if self._speculation is None:
            return []
        return self._resolve(now, WithdrawalReason.MISMATCH, emit=False)

    # ------------------------------------------------------------------ internals

    def _confirm_resumption(self, now: float) -> list[PlannerAction]:
        """The user really resumed: record the pause and withdraw what it would have answered."""
        actions = self._cancel_timers(TimerKind.RESUME)
        if self._pause_start is not None and self._resume_at is not None:
            self._debounce.record_pause(self._resume_at - self._pause_start, resumed=True)
        self._pause_start = None
        self._resume_at = None
        if self._speculation is not None and self._params.own_speculation:
            actions += self._resolve(now, WithdrawalReason.RESUMED)
            self._turn_resumptions += 1
        self._phase = SpeculationPhase.IDLE
        return actions

    def _can_speculate(self, text: str) -> bool:
        p = self._params
        return (
            p.own_speculation
            and bool(text.strip())
            and not self._tool_blocked
            and len(self._turn_speculations) < p.max_speculations_per_turn
            and len(text.split()) <= p.max_utterance_words
            and text != self._blocked_text
        )

    def _maybe_start(self, now: float) -> list[PlannerAction]:
        text = self.text
        if not self._can_speculate(text):
            if text.strip():
                # Bounded out for this pause; waiting for text is pointless.
                self._phase = SpeculationPhase.IDLE
                self._debounce_elapsed = False
            return []
        record = self._new_record(now, text)
        self._speculation = record
        self._phase = SpeculationPhase.SPECULATING
        self._debounce_elapsed = False
        self.started += 1
        return [
            StartSpeculation(record),
            *self._arm(TimerKind.TIMEOUT, self._params.speculation_timeout_secs),
        ]

    def _new_record(self, now: float, text: str) -> SpeculationRecord:
        record = SpeculationRecord(
            id=self._next_id,
            turn=self._turn,
            text=text,
            started_at=now,
            vad_stopped_at=self._pause_start,
            delay_secs=self.speculation_delay_secs,
            backed_off=self._turn_resumptions > 0 and self._params.resume_backoff > 1.0,
        )
        self._next_id += 1
        self._turn_speculations.append(record)
        return record

    def _resolve(
        self, now: float, reason: WithdrawalReason | None, *, emit: bool = True
    ) -> list[PlannerAction]:
        """End the speculation in flight: adopted (``reason`` None) or withdrawn.

        The single exit for a speculation, so none can be resolved twice or left open.
        """
        record = self._speculation
        if record is None:
            return []
        self._speculation = None
        self._phase = SpeculationPhase.IDLE
        record.resolved_at = now
        actions: list[PlannerAction] = self._cancel_timers(TimerKind.TIMEOUT)
        # A speculation started at a backed-off delay is evidence about that turn, not about the
        # session delay: one turn of thinking aloud would otherwise fill the debounce's samples.
        teaches_debounce = not record.backed_off
        change = None
        if reason is None:
            record.adopted = True
            self.adopted += 1
            if teaches_debounce:
                change = self._debounce.record_outcome(withdrawn=False)
        else:
            record.withdrawal_reason = reason
            self.withdrawn[reason] += 1
            if teaches_debounce and reason.teaches_debounce:
                change = self._debounce.record_outcome(withdrawn=True)
            actions.append(WithdrawSpeculation(record) if emit else SpeculationAccounted(record))
        if change is not None:
            actions.append(DebounceChanged(change))
        return actions

    def _arm(self, kind: TimerKind, delay: float) -> list[PlannerAction]:
        self._armed.add(kind)
        return [ArmTimer(kind, max(0.0, delay))]

    def _cancel_timers(self, *kinds: TimerKind) -> list[PlannerAction]:
        actions: list[PlannerAction] = []
        for kind in kinds:
            if kind in self._armed:
                self._armed.discard(kind)
                actions.append(CancelTimer(kind))
        return actions
