"""What the speculative turn strategy tells observers: speculations and their outcomes.

These records are the contract between the strategy (which decides) and whoever measures
(the turn timing observer, the demo, the bench). Times are ``time.monotonic()`` seconds taken from
the strategy's injectable clock, so durations between them are never affected by wall-clock jumps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["DebounceChange", "SpeculationRecord", "UserTurnCommit", "WithdrawalReason"]


class WithdrawalReason(StrEnum):
    """Why a speculation was withdrawn.

    Only :attr:`TOOL_CALL` is excluded from the cancellation rate: the LLM service withdrew that
    speculation because tools never run speculatively, not because the guess was wrong.
    :attr:`FAILED` counts as cancelled but does not tune the debounce.
    """

    RESUMED = "resumed"
    """The user resumed speaking with new words (or long enough) before commit."""
    EXTENDED = "extended"
    """A later final transcript extended the text; a new speculation replaces this one."""
    MISMATCH = "mismatch"
    """At commit the committed text did not match the speculated text."""
    TIMEOUT = "timeout"
    """The speculation went unresolved for longer than its timeout."""
    TOOL_CALL = "tool_call"
    """The LLM service withdrew it because the inference wanted a tool call."""
    TURN_ENDED = "turn_ended"
    """The turn ended some other way (watchdog, session end) with the speculation unresolved."""
    FAILED = "failed"
    """The LLM service reported an error while the speculation was in flight (a 5xx, a dropped
    stream). Adopting it would commit an empty or cut answer: the commit runs a fresh inference.
    Counted like any wasted speculation, but it does not tune the debounce (it says nothing about
    the user's pauses)."""

    @property
    def counts_toward_cancel_rate(self) -> bool:
        """Whether this withdrawal counts as a cancelled speculation (all but tool calls)."""
        return self is not WithdrawalReason.TOOL_CALL

    @property
    def teaches_debounce(self) -> bool:
        """Whether this withdrawal says the guess about the pause was wrong."""
        return self.counts_toward_cancel_rate and self is not WithdrawalReason.FAILED


@dataclass
class SpeculationRecord:
    """One speculative inference, from start to outcome.

    Parameters:
        id: Session-unique, increasing speculation id.
        turn: Index of the user turn (0-based, per strategy instance) it belongs to.
        text: The user text the speculative inference was run against.
        started_at: Clock time the speculation was triggered.
        vad_stopped_at: Clock time of the VAD stop it followed, or None when none was seen.
        delay_secs: The speculation delay in force when it started (the debounce's, or more
            when earlier speculations of the turn were withdrawn by resumed speech).
        backed_off: Started at a delay backed off within its turn (``resume_backoff``). Its
            outcome says nothing about the session delay, so the debounce does not learn from it.
        from_interim: Its text includes words of an interim transcript (not final yet).
        resolved_at: Clock time of the outcome, None while open.
        ready_at: Clock time its held answer was reported ready (first sentence, or first
            audio with speculative TTS), None if never.
        adopted: True once the commit confirmed it.
        withdrawal_reason: Why it was withdrawn, None unless withdrawn.
    """

    id: int
    turn: int
    text: str
    started_at: float
    vad_stopped_at: float | None
    delay_secs: float
    backed_off: bool = False
    from_interim: bool = False
    resolved_at: float | None = None
    ready_at: float | None = None
    adopted: bool = False
    withdrawal_reason: WithdrawalReason | None = None

    @property
    def is_open(self) -> bool:
        """Whether the speculation is still awaiting its outcome."""
        return self.resolved_at is None


@dataclass(frozen=True)
class UserTurnCommit:
    """A committed user turn, as the strategy decided it.

    Parameters:
        turn: Index of the user turn.
        text: The committed text, exactly what the aggregator writes to the context.
        committed_at: Clock time of the commit.
        adopted: The speculation the commit confirmed, None when a normal inference runs.
        speculations: Every speculation started in this turn, in order.
    """

    turn: int
    text: str
    committed_at: float
    adopted: SpeculationRecord | None
    speculations: tuple[SpeculationRecord, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class DebounceChange:
    """A change of the speculation delay by the adaptive debounce.

    Parameters:
        old_secs: Delay before the change.
        new_secs: Delay after the change.
        reason: Human-readable reason, with the numbers behind it.
        window_cancel_rate: Cancellation rate over the window that triggered the change.
        samples: Outcomes in that window.
    """

    old_secs: float
    new_secs: float
    reason: str
    window_cancel_rate: float
    samples: int
