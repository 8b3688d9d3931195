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

The commit costs nothing. When the commit rule says the turn is over while a speculation is held
but its answer is not ready yet, committing now gains nothing: the answer cannot play before it is
ready. So the planner holds the commit until the LLM service reports the held answer ready
(:meth:`SpeculationPlanner.speculation_progress`), never past a ceiling, and gives the user up to
that moment to go on::

    VAD stop |<- floor (the commit rule) ->| commit requested: held
             |<- delay ->| start |<------ answer ready ------>| commit (adopts)
             |                                                 ... or VAD start: hold dropped

Only when no readiness can be observed (an LLM service that does not report it) or no
speculation has started yet is the wait an estimate: the moving average of measured readiness.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pipecat.turns.user_stop.eager_match_policy import EagerMatchPolicy, NormalizedMatch
from pipecat.utils.string import TextPartForConcatenation, concatenate_aggregated_text

from pipecat_speculative.frames import SpeculationStage
from pipecat_speculative.turns.adaptive_debounce import AdaptiveDebounce, DebounceParams
from pipecat_speculative.turns.commit_patience import CommitPatience, PatienceParams
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
    "FinalizeCommit",
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
    COMMIT = "commit"


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
        hold_commit_until_ready: When the commit rule fires while a speculation is held and its
            answer is not ready, commit at the moment it is ready rather than now: the answer
            plays no later, and the user gets that much more time to go on. False commits when
            the rule fires.
        ready_stage: Which readiness the held commit waits for: the held answer's first
            sentence (the TTS starts at the commit), or its first audio (speculative TTS).
        commit_ceiling_secs: A held commit happens at the latest this long after the VAD stop
            that began the pause, ready or not: a stalled inference must not keep the turn
            open (the commit then adopts the speculation, or runs a fresh inference).
        initial_readiness_secs: Prior for speculation start → answer ready, used only where
            readiness cannot be observed (an LLM service that does not report it, or a
            speculation that has not started yet); replaced by measurements as they come.
        readiness_smoothing: Weight of a new readiness measurement in its moving average.
        patience: The least silence before a held commit, learned from the pauses the user
            resumed after (starts at Pipecat's 0.6 s speech timeout).
        speculate_on_interim: At the VAD stop, speculate on the final transcript plus the
            latest interim one instead of waiting for the STT's last final (which a Finalize
            brings ~0.15 s later). If the final says the same, modulo case and punctuation, the
            commit adopts it (Pipecat's NormalizedMatch, as with Flux's eager transcripts);
            otherwise the final re-speculates, as late as it would have started anyway. A
            withdrawal of this kind does not teach the debounce (it says nothing about pauses).
    """

    debounce: DebounceParams = field(default_factory=DebounceParams)
    resume_withdraw_secs: float = 0.5
    speculation_timeout_secs: float = 5.0
    max_speculations_per_turn: int = 6
    max_utterance_words: int = 80
    resume_backoff: float = 1.5
    own_speculation: bool = True
    hold_commit_until_ready: bool = True
    ready_stage: SpeculationStage = SpeculationStage.FIRST_SENTENCE
    commit_ceiling_secs: float = 2.5
    initial_readiness_secs: float = 0.8
    readiness_smoothing: float = 0.3
    patience: PatienceParams = field(default_factory=PatienceParams)
    speculate_on_interim: bool = True

    def __post_init__(self):
        if self.resume_withdraw_secs <= 0 or self.speculation_timeout_secs <= 0:
            raise ValueError("resume_withdraw_secs and speculation_timeout_secs must be > 0")
        if self.max_speculations_per_turn < 1 or self.max_utterance_words < 1:
            raise ValueError("max_speculations_per_turn and max_utterance_words must be >= 1")
        if self.resume_backoff < 1.0:
            raise ValueError(f"resume_backoff must be >= 1.0, got {self.resume_backoff}")
        if self.commit_ceiling_secs <= 0 or self.initial_readiness_secs <= 0:
            raise ValueError("commit_ceiling_secs and initial_readiness_secs must be > 0")
        if not 0 < self.readiness_smoothing <= 1:
            raise ValueError(
                f"readiness_smoothing must be in (0, 1], got {self.readiness_smoothing}"
            )
        if self.ready_stage is SpeculationStage.STARTED:
            raise ValueError("ready_stage must be first_sentence or first_audio")


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
class FinalizeCommit:
    """End the user turn now: the commit the rule asked for, held until this moment."""

    reason: str


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
    | FinalizeCommit
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

        # A commit the rule asked for, held until the answer is ready.
        self._commit_held = False
        # Whether the LLM service reports readiness (it reported a speculation starting).
        self._reports_readiness = False
        self._readiness_secs = self._params.initial_readiness_secs
        self._readiness_measured = 0
        self._patience = CommitPatience(self._params.patience)
        # The latest interim transcript since the last final: words not final yet.
        self._interim = ""
        # The last commit and the VAD stop of its pause, to recognize a commit that cut in.
        self._last_commit_at: float | None = None
        self._last_commit_pause_start: float | None = None

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
    def patience(self) -> CommitPatience:
        """The learned least silence before a commit."""
        return self._patience

    @property
    def speculation_text(self) -> str:
        """What a speculation would answer now: the final text, plus the interim if allowed."""
        if not self._params.speculate_on_interim or not self._interim.strip():
            return self.text
        return concatenate_aggregated_text(
            [*self._parts, TextPartForConcatenation(self._interim, False)]
        )

    @property
    def turn(self) -> int:
        """Index of the current user turn."""
        return self._turn

    @property
    def readiness_secs(self) -> float:
        """Estimated speculation start → answer ready, seconds (moving average)."""
        return self._readiness_secs

    @property
    def readiness_measurements(self) -> int:
        """How many measurements ``readiness_secs`` rests on this session (0: still a prior)."""
        return self._readiness_measured

    @property
    def commit_held(self) -> bool:
        """Whether a commit the rule asked for is held until the answer is ready."""
        return self._commit_held

    @property
    def cancel_rate(self) -> float | None:
        """Withdrawn / started over the session, tool-call withdrawals excluded."""
        counted = sum(n for r, n in self.withdrawn.items() if r.counts_toward_cancel_rate)
        total = counted + self.adopted
        return counted / total if total else None

    # ------------------------------------------------------------------ events

    def turn_started(self, now: float) -> list[PlannerAction]:
        """A user turn started: per-turn bounds reset (the text does not; see turn_stopped)."""
        if (
            self._last_commit_at is not None
            and self._last_commit_pause_start is not None
            and now - self._last_commit_at < self._params.patience.cut_in_secs
        ):
            # The user went on right after the commit: it came inside their pause.
            self._patience.record_cut_in(self._turn, now - self._last_commit_pause_start)
        self._last_commit_at = None
        self._turn_speculations = []
        self._turn_resumptions = 0
        self._tool_blocked = False
        self._blocked_text = None
        return []

    def turn_stopped(self, now: float) -> list[PlannerAction]:
        """The turn ended, by the commit or any other way (watchdog, session end)."""
        actions: list[PlannerAction] = []
        self._commit_held = False
        if self._speculation is not None:
            actions += self._resolve(now, WithdrawalReason.TURN_ENDED)
        actions += self._cancel_timers(*TimerKind)
        self._phase = SpeculationPhase.IDLE
        self._parts = []
        self._interim = ""
        self._pause_start = None
        self._resume_at = None
        self._debounce_elapsed = False
        self._turn_resumptions = 0
        self._turn += 1
        return actions

    def vad_started(self, now: float) -> list[PlannerAction]:
        """VAD says the user is speaking."""
        self._user_speaking = True
        # A held commit is void: the user goes on. The commit rule fires again after the next stop.
        self._commit_held = False
        actions = self._cancel_timers(TimerKind.DEBOUNCE, TimerKind.COMMIT)
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
        if not text.strip():
            return []
        self._interim = text
        if self._user_speaking and self._resume_at is not None:
            return self._confirm_resumption(now)
        if (
            not self._user_speaking
            and self._phase == SpeculationPhase.DEBOUNCING
            and self._debounce_elapsed
            and self._params.speculate_on_interim
        ):
            # The delay is over and the pause had no text yet: the interim brings some.
            return self._maybe_start(now) + self._reconsider_held_commit(now)
        return []

    def final_transcript(
        self, now: float, text: str, *, includes_inter_part_spaces: bool = False
    ) -> list[PlannerAction]:
        """A final transcript segment, as the aggregator will append it."""
        if not text.strip():
            # The aggregator drops blank transcripts, so they never change the committed text.
            return []
        self._parts.append(TextPartForConcatenation(text, includes_inter_part_spaces))
        self._interim = ""
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
        return actions + self._reconsider_held_commit(now)

    def timer_fired(self, now: float, kind: TimerKind) -> list[PlannerAction]:
        """A timer armed by an :class:`ArmTimer` action expired."""
        if kind not in self._armed:
            return []  # Cancelled or re-armed meanwhile: stale.
        self._armed.discard(kind)
        if kind is TimerKind.DEBOUNCE:
            if self._phase != SpeculationPhase.DEBOUNCING or self._user_speaking:
                return []
            self._debounce_elapsed = True
            return self._maybe_start(now) + self._reconsider_held_commit(now)
        if kind is TimerKind.RESUME:
            if self._user_speaking and self._resume_at is not None:
                return self._confirm_resumption(now)
            return []
        if kind is TimerKind.COMMIT:
            if not self._commit_held:
                return []
            return self._release_commit("the ceiling or the estimated readiness was reached")
        # TIMEOUT
        if self._speculation is None:
            return []
        self._blocked_text = self._speculation.text
        return self._resolve(now, WithdrawalReason.TIMEOUT) + self._reconsider_held_commit(now)

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
        self._commit_held = False
        actions = self._cancel_timers(TimerKind.DEBOUNCE, TimerKind.RESUME, TimerKind.COMMIT)
        self._last_commit_at = now
        self._last_commit_pause_start = self._pause_start
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
        self._interim = ""
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
            actions = self._resolve(now, WithdrawalReason.TOOL_CALL)
            return actions + self._reconsider_held_commit(now)
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
        return self._resolve(now, WithdrawalReason.FAILED) + self._reconsider_held_commit(now)

    def commit_requested(self, now: float) -> list[PlannerAction]:
        """The commit rule says the turn is over: commit now, or hold until the answer is ready.

        Returns:
            ``[FinalizeCommit]`` to commit now, or a timer for the held commit's deadline (the
            hold ends earlier with ``FinalizeCommit`` when the answer is reported ready, or is
            dropped when the user speaks).
        """
        if self._commit_held:
            return []
        wait = self._commit_wait(now)
        if wait is None:
            return [FinalizeCommit("the commit rule fired and nothing is worth waiting for")]
        self._commit_held = True
        return self._arm(TimerKind.COMMIT, wait)

    def speculation_progress(
        self, now: float, stage: SpeculationStage, text: str
    ) -> list[PlannerAction]:
        """The LLM service (or the speculative TTS) reports how far a held answer has come.

        Args:
            now: Clock time of the report.
            stage: The stage reached.
            text: The user text the reporting inference answers; a report about a speculation
                already withdrawn (its inference may still be winding down) does not match the
                one in flight and is ignored.
        """
        if stage is SpeculationStage.STARTED:
            self._reports_readiness = True
            return self._reconsider_held_commit(now)
        speculation = self._speculation
        if (
            stage is not self._params.ready_stage
            or speculation is None
            or speculation.ready_at is not None
            # The aggregator puts the speculated text verbatim in the provisional context.
            or speculation.text.strip() != text.strip()
        ):
            return []
        speculation.ready_at = now
        self.observe_readiness(now - speculation.started_at)
        return self._reconsider_held_commit(now, f"the held answer is ready ({stage.value})")

    def observe_readiness(self, secs: float):
        """Feed one measured speculation start → answer ready duration (seconds)."""
        if secs <= 0:
            return
        if self._readiness_measured == 0:
            self._readiness_secs = secs
        else:
            w = self._params.readiness_smoothing
            self._readiness_secs = (1 - w) * self._readiness_secs + w * secs
        self._readiness_measured += 1

    def seed_readiness(self, secs: float):
        """Replace the readiness prior before anything is measured (e.g. from warmups)."""
        if secs > 0 and self._readiness_measured == 0:
            self._readiness_secs = secs

    def external_speculation_started(self, now: float, text: str) -> list[PlannerAction]:
        """The commit strategy started a speculation itself (Flux eager end of turn).

        A bet still open here was never withdrawn in the pipeline: the service's withdrawal
        (``EagerEndOfTurnCancelFrame``, a system frame) overtook it while its transcript was
        queued, and the commit rule starts the new bet beside it. It is withdrawn for real, or the
        commit would release both answers.
        """
        actions: list[PlannerAction] = []
        if self._speculation is not None:
            actions += self._resolve(now, WithdrawalReason.EXTENDED)
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

    def _commit_wait(self, now: float) -> float | None:
        """How long a commit requested now should be held, or None to commit at once.

        Never before the learned patience; then until the held answer is ready (or its
        estimate, where readiness is not reported), never past the ceiling.
        """
        p = self._params
        if not p.hold_commit_until_ready or not p.own_speculation:
            return None
        anchor = self._pause_start if self._pause_start is not None else now
        patient_until = anchor + self._patience.secs(self._turn)
        ceiling = max(anchor + p.commit_ceiling_secs, patient_until)
        speculation = self._speculation
        if speculation is not None:
            if speculation.ready_at is not None:
                ready = speculation.ready_at
            elif self._reports_readiness:
                ready = ceiling  # the report ends the hold earlier
            else:
                ready = min(ceiling, speculation.started_at + self._readiness_secs)
        elif self._phase == SpeculationPhase.DEBOUNCING and self._can_speculate(
            self.speculation_text
        ):
            # Not started yet: it will, after the delay; its readiness can only be estimated.
            ready = min(ceiling, anchor + self.speculation_delay_secs + self._readiness_secs)
        else:
            ready = now
        wait = max(patient_until, ready) - now
        return wait if wait > 1e-3 else None

    def _reconsider_held_commit(
        self, now: float, reason: str = "nothing left worth waiting for"
    ) -> list[PlannerAction]:
        """Re-decide a held commit after the speculation in flight changed."""
        if not self._commit_held:
            return []
        wait = self._commit_wait(now)
        if wait is None:
            return self._release_commit(reason)
        return self._arm(TimerKind.COMMIT, wait)

    def _release_commit(self, reason: str) -> list[PlannerAction]:
        self._commit_held = False
        return [*self._cancel_timers(TimerKind.COMMIT), FinalizeCommit(reason)]

    def _confirm_resumption(self, now: float) -> list[PlannerAction]:
        """The user really resumed: record the pause and withdraw what it would have answered."""
        actions = self._cancel_timers(TimerKind.RESUME)
        if self._pause_start is not None and self._resume_at is not None:
            pause = self._resume_at - self._pause_start
            self._debounce.record_pause(pause, resumed=True)
            self._patience.record_resumed_pause(self._turn, pause)
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
        text = self.speculation_text
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
            from_interim=text != self.text,
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
        teaches_debounce = not record.backed_off and not (
            record.from_interim and reason is WithdrawalReason.EXTENDED
        )
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
