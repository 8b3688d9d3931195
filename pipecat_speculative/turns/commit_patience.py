"""Commit patience: the least silence before a commit, learned from the pauses a user resumes after.

The free-patience commit waits for the held answer, which gives a hesitant speaker as long as the
answer needs. With a fast LLM that is short: a user who thinks aloud for a second is then cut off
at the first pause. This controller remembers how long the user has paused and gone on, and keeps
the commit from coming sooner than that for the next turns::

    "I was thinking" |<-- 0.7 s (VAD stop → VAD start) -->| "maybe Sintra" |<- 0.9 s ->| "too"
                     the hold saw the user go on, or the commit cut them off (the continuation
                     starts a new turn less than ``cut_in_secs`` after it: a cut-in)
    for the rest of that thought: patience = 0.7 × 1.5 + 0.1 = 1.15 s after each VAD stop

A pause is measured from the VAD stop to the VAD start of the resumed speech: a commit before that
start cannot be taken back. Patience never goes below ``floor_secs`` (Pipecat's speech timeout)
nor above ``max_secs``, and a long pause is forgotten after ``memory_turns`` user turns (by
default the turn it was seen in, or the continuation a cut-in started), so one hesitant turn does
not slow a fluent speaker's next answers: patience beyond the answer's readiness costs latency on
every turn it applies to. Decisions are synchronous and clock-free.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from loguru import logger

__all__ = ["CommitPatience", "PatienceParams", "PatienceSnapshot"]


@dataclass(frozen=True)
class PatienceParams:
    """Tuning of the learned commit patience.

    Parameters:
        floor_secs: Least silence after VAD stop before a commit, before anything is learned
            and whenever nothing long was seen recently. 0 leaves the floor to the commit rule
            (the free-patience rule's own is Pipecat's 0.6 s speech timeout).
        max_secs: Most patience it learns: past this, a user who has finished waits too long.
        factor: A learned pause is multiplied by this: a hesitant speaker's pauses vary, and
            the next one is often longer than the last (0.65-1.2 s in one reference turn).
        margin_secs: Added on top, for the time a resumption takes to be seen.
        memory_turns: User turns for which a pause is remembered: 1 is the turn it was seen in
            (a cut-in is recorded in the turn it started, the continuation). Longer memory
            protects the first pause of a later hesitant turn, at the cost of slower answers on
            every fluent turn in between.
        cut_in_secs: A new user turn that starts this soon after a commit means the commit cut
            the user off: that pause is learned like a resumed one.
        adaptive: False keeps the patience at ``floor_secs``.
    """

    floor_secs: float = 0.0
    max_secs: float = 1.6
    factor: float = 1.5
    margin_secs: float = 0.1
    memory_turns: int = 1
    cut_in_secs: float = 1.0
    adaptive: bool = True

    def __post_init__(self):
        if not 0 <= self.floor_secs <= self.max_secs:
            raise ValueError(
                f"need 0 <= floor_secs <= max_secs, got {self.floor_secs}, {self.max_secs}"
            )
        if self.factor < 1 or self.margin_secs < 0:
            raise ValueError("need factor >= 1 and margin_secs >= 0")
        if self.memory_turns < 1 or self.cut_in_secs < 0:
            raise ValueError("need memory_turns >= 1 and cut_in_secs >= 0")


@dataclass(frozen=True)
class PatienceSnapshot:
    """The remembered pauses, to carry into a later session (see :meth:`CommitPatience.restore`).

    Parameters:
        pauses: ``(turns ago, seconds)`` of the remembered resumed pauses, oldest first; turns
            ago counts from the turn the snapshot was taken for (1 is the turn before it).
    """

    pauses: tuple[tuple[int, float], ...] = ()


class CommitPatience:
    """Learns the least silence before a commit from the pauses the user resumed after.

    Call :meth:`record_resumed_pause` for every pause the user ended by speaking again with
    words, :meth:`record_cut_in` when a commit turned out to have cut the user off, and read
    :meth:`secs` before deciding a commit.
    """

    def __init__(self, params: PatienceParams | None = None):
        """Initialize the controller.

        Args:
            params: Tuning; by default nothing is added to the commit rule's own floor until a
                long resumed pause is seen.
        """
        self._params = params or PatienceParams()
        # (user turn, pause seconds) of recent resumed pauses, bounded.
        self._pauses: deque[tuple[int, float]] = deque(maxlen=16)
        self.cut_ins = 0

    def __str__(self):
        return "CommitPatience"

    @property
    def params(self) -> PatienceParams:
        """The tuning in force."""
        return self._params

    def secs(self, turn: int) -> float:
        """Least silence after VAD stop before a commit in user turn ``turn``."""
        p = self._params
        recent = [s for t, s in self._pauses if turn - t < p.memory_turns]
        if not p.adaptive or not recent:
            return p.floor_secs
        learned = max(recent) * p.factor + p.margin_secs
        return min(p.max_secs, max(p.floor_secs, learned))

    def snapshot(self, turn: int) -> PatienceSnapshot:
        """The remembered pauses, aged relative to user turn ``turn`` (e.g. the next one)."""
        return PatienceSnapshot(pauses=tuple((max(0, turn - t), s) for t, s in self._pauses))

    def restore(self, snapshot: PatienceSnapshot, turn: int = 0):
        """Remember an earlier session's pauses as if it had gone on into user turn ``turn``.

        Each pause keeps its age, so ``memory_turns`` forgets it exactly as it would have
        within one call: a warm start never makes patience last longer than a session would.
        """
        self._pauses.extend((turn - age, s) for age, s in snapshot.pauses if s > 0)

    def record_resumed_pause(self, turn: int, pause_secs: float):
        """The user paused this long (VAD stop → VAD start) and went on with words."""
        if pause_secs > 0:
            self._pauses.append((turn, pause_secs))

    def record_cut_in(self, turn: int, pause_secs: float):
        """A commit came in a pause of this length, and the user went on right after it."""
        self.cut_ins += 1
        before = self.secs(turn)
        self.record_resumed_pause(turn, pause_secs)
        logger.info(
            f"{self}: a commit cut the user off after a {pause_secs:.2f} s pause; patience "
            f"{before:.2f} s -> {self.secs(turn):.2f} s"
        )
