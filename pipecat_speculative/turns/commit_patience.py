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
every turn it applies to.

A *habit* is different from one hesitant turn. When at least ``habit_share`` of the user's last
``habit_window`` turns had a long resumed pause (``habit_pause_secs`` or more: one a commit could
have cut into), the user thinks aloud as a rule, and the first pause of their next turn is as
likely to be cut into as the second. Then every turn gets the patience that covers most of those
pauses (their ``habit_quantile`` + ``margin_secs``): this user's answers come later, and the bot
stops talking over them. The habit is judged over completed turns only, needs ``habit_min_turns``
of them, and travels with a stored profile (:meth:`snapshot` / :meth:`restore`), so a returning
hesitant user is protected from the first turn of the next call. Decisions are synchronous and
clock-free.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from loguru import logger

__all__ = ["CommitPatience", "PatienceParams", "PatienceSnapshot"]

_MEMORY = 16
"""User turns whose longest resumed pause is remembered (the profile keeps as many)."""


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
        habit_share: Share of the last ``habit_window`` completed turns with a long resumed
            pause from which the user is taken to pause as a habit; None never does.
        habit_window: Completed user turns the habit is judged over (at most 16, the pauses
            remembered).
        habit_min_turns: Completed turns needed before a habit is judged at all.
        habit_pause_secs: Resumed pauses shorter than this (VAD stop → VAD start) do not count
            toward a habit: the commit rule's own floor already waits them out.
        habit_quantile: The habitual patience covers this quantile of the long pauses in the
            window (nearest rank), plus ``margin_secs``, within ``floor_secs``/``max_secs``.
    """

    floor_secs: float = 0.0
    max_secs: float = 1.6
    factor: float = 1.5
    margin_secs: float = 0.1
    memory_turns: int = 1
    cut_in_secs: float = 1.0
    adaptive: bool = True
    habit_share: float | None = 0.34
    habit_window: int = 12
    habit_min_turns: int = 4
    habit_pause_secs: float = 0.5
    habit_quantile: float = 0.9

    def __post_init__(self):
        if not 0 <= self.floor_secs <= self.max_secs:
            raise ValueError(
                f"need 0 <= floor_secs <= max_secs, got {self.floor_secs}, {self.max_secs}"
            )
        if self.factor < 1 or self.margin_secs < 0:
            raise ValueError("need factor >= 1 and margin_secs >= 0")
        if self.memory_turns < 1 or self.cut_in_secs < 0:
            raise ValueError("need memory_turns >= 1 and cut_in_secs >= 0")
        if self.habit_share is not None and not 0 < self.habit_share <= 1:
            raise ValueError(f"need 0 < habit_share <= 1 or None, got {self.habit_share}")
        if not 1 <= self.habit_min_turns <= self.habit_window <= _MEMORY:
            raise ValueError(
                f"need 1 <= habit_min_turns <= habit_window <= {_MEMORY}, got "
                f"{self.habit_min_turns}, {self.habit_window}"
            )
        if self.habit_pause_secs < 0 or not 0 < self.habit_quantile <= 1:
            raise ValueError("need habit_pause_secs >= 0 and 0 < habit_quantile <= 1")


@dataclass(frozen=True)
class PatienceSnapshot:
    """The remembered pauses, to carry into a later session (see :meth:`CommitPatience.restore`).

    Parameters:
        pauses: ``(turns ago, seconds)`` of the remembered resumed pauses (the longest of each
            turn), oldest first; turns ago counts from the turn the snapshot was taken for (1
            is the turn before it).
        turns: Completed user turns the pauses were looked for in (turns without a pause
            count too: they are what makes a habit a habit or not); 0 when unknown.
    """

    pauses: tuple[tuple[int, float], ...] = ()
    turns: int = 0


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
        # (user turn, longest resumed pause of that turn), by turn, bounded.
        self._pauses: deque[tuple[int, float]] = deque(maxlen=_MEMORY)
        # The first user turn (possibly of an earlier session, < 0) these pauses were looked for in.
        self._known_from = 0
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
        if not p.adaptive:
            return p.floor_secs
        recent = [s for t, s in self._pauses if turn - t < p.memory_turns]
        learned = max(recent) * p.factor + p.margin_secs if recent else 0.0
        wanted = max(learned, self.habit_secs(turn) or 0.0)
        if wanted <= 0:
            return p.floor_secs
        return min(p.max_secs, max(p.floor_secs, wanted))

    def habit_secs(self, turn: int) -> float | None:
        """The habitual patience for user turn ``turn``, or None when the user has no habit.

        Judged over the completed turns before ``turn`` (at most ``habit_window``) that this
        controller (or the profile it was restored from) looked at.
        """
        p = self._params
        if p.habit_share is None:
            return None
        start = max(turn - p.habit_window, self._known_from)
        turns = turn - start
        if turns < p.habit_min_turns:
            return None
        long = sorted(s for t, s in self._pauses if start <= t < turn and s >= p.habit_pause_secs)
        if len(long) < p.habit_share * turns:
            return None
        # Nearest rank: the smallest pause at or above the quantile.
        covered = long[max(0, math.ceil(p.habit_quantile * len(long)) - 1)]
        return min(p.max_secs, max(p.floor_secs, covered + p.margin_secs))

    def snapshot(self, turn: int) -> PatienceSnapshot:
        """The remembered pauses, aged relative to user turn ``turn`` (e.g. the next one)."""
        return PatienceSnapshot(
            pauses=tuple((max(0, turn - t), s) for t, s in self._pauses),
            turns=min(_MEMORY, max(0, turn - self._known_from)),
        )

    def restore(self, snapshot: PatienceSnapshot, turn: int = 0):
        """Remember an earlier session's pauses as if it had gone on into user turn ``turn``.

        Each pause keeps its age, so ``memory_turns`` forgets it exactly as it would have
        within one call: a warm start never makes the patience of one hesitant turn last longer
        than a session would. What does carry over is a habit (see the module docs), judged
        over the snapshot's turns as if they had been this call's first.
        """
        for age, s in snapshot.pauses:
            self.record_resumed_pause(turn - age, s)
        known = max(snapshot.turns, max((age for age, _ in snapshot.pauses), default=0))
        self._known_from = min(self._known_from, turn - known)

    def record_resumed_pause(self, turn: int, pause_secs: float):
        """The user paused this long (VAD stop → VAD start) and went on with words."""
        if pause_secs <= 0:
            return
        for i, (t, s) in enumerate(self._pauses):
            if t == turn:
                self._pauses[i] = (t, max(s, pause_secs))
                return
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
