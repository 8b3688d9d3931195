"""Adaptive debounce: the speculation delay that keeps the cancellation rate inside a band.

The speculation delay is how much silence (after VAD stop) the plugin waits for before it spends
an inference on a guess that the user has finished. Too short and most speculations are withdrawn
when the user resumes (wasted tokens, a cold connection after each cancel); too long and answers
start later than they need to.

The controller learns from two kinds of evidence:

- **Outcomes** of speculations (adopted / withdrawn). The windowed cancellation rate decides *when*
  to act: only when it leaves the target band, and only after ``min_samples`` outcomes since the
  last change (one person thinking aloud twice is noise, not signal).
- **Pauses** it saw, each ending either in resumption or in a turn end. They decide *where* to go:
  a delay ``d`` would have speculated in every pause longer than ``d``; the resumed ones among
  those are the cancellations. The controller jumps to the shortest delay that would have put the
  cancellation rate at the middle of the band on the pauses seen::

      user: "I want to ..."  |<- 0.7 s ->| "... with you"  |<- 0.9 s ->| "what can I do?" |<- end ->|
                             resumed                        resumed                          turn end
      d = 0.5 s: 3 speculations, 2 cancelled (67 %)  -> too high
      d = 0.8 s: 2 speculations, 1 cancelled (50 %)
      d = 0.95 s: 1 speculation, 0 cancelled (0 %)    -> shortest delay inside or under the band

  When the pauses cannot explain the rate (withdrawals caused by late transcripts rather than by
  resumption), it falls back to a fixed step in the right direction.

Decisions are synchronous and clock-free, so they can be tested without a pipeline.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from loguru import logger

from pipecat_speculative.turns.speculation_events import DebounceChange

__all__ = ["AdaptiveDebounce", "DebounceParams", "DebounceSnapshot", "DebounceState"]

_MAX_CHANGES_KEPT = 100
"""Changes kept for reports: every session stays bounded, however long."""


@dataclass(frozen=True)
class DebounceParams:
    """Tuning of the adaptive debounce.

    Parameters:
        initial_secs: Speculation delay before anything is learned, seconds after VAD stop (on top
            of the VAD's own ``stop_secs``). 0.0 speculates at the VAD stop (0.2 s of silence
            with the default VAD): with a commit held until the answer is ready, every
            millisecond of delay is a millisecond of latency on a turn that ends there, while a
            speculation withdrawn costs only tokens. The band raises it for speakers whose
            pauses say otherwise.
        min_secs: Lower bound. 0.0 speculates on the VAD stop itself.
        max_secs: Upper bound. Past about 1 s the speculation no longer starts before a typical
            commit, so waiting longer saves nothing.
        target_low: Lower edge of the cancellation-rate band. Below it the delay is wasting
            latency: it shrinks.
        target_high: Upper edge of the band. Above it the delay is wasting inferences: it grows.
        min_samples: Outcomes needed since the last change before the delay may change again.
            Protects against reacting to one hesitant sentence.
        window: Outcomes kept for the reported (and alerting) cancellation rate.
        pause_window: Pauses kept to estimate the delay that would reach the band.
        step_secs: Fixed step used when the pauses cannot explain the observed rate.
        margin_secs: Added to a learned pause length so a speculation does not race a resumption
            that happens at exactly that moment.
        max_jump_secs: Largest change at once. The pauses seen may all come from one hesitant
            sentence; moving part of the way and re-measuring keeps one turn of thinking aloud
            from setting the delay for the whole session.
        adaptive: False fixes the delay at ``initial_secs``.
    """

    initial_secs: float = 0.0
    min_secs: float = 0.0
    max_secs: float = 1.0
    target_low: float = 0.30
    target_high: float = 0.40
    min_samples: int = 5
    window: int = 20
    pause_window: int = 40
    step_secs: float = 0.05
    margin_secs: float = 0.03
    max_jump_secs: float = 0.3
    adaptive: bool = True

    def __post_init__(self):
        if not 0.0 <= self.min_secs <= self.max_secs:
            raise ValueError(
                f"need 0 <= min_secs <= max_secs, got {self.min_secs}, {self.max_secs}"
            )
        if not self.min_secs <= self.initial_secs <= self.max_secs:
            raise ValueError(
                f"initial_secs {self.initial_secs} outside [{self.min_secs}, {self.max_secs}]"
            )
        if not 0.0 <= self.target_low < self.target_high <= 1.0:
            raise ValueError(
                f"need 0 <= target_low < target_high <= 1, got {self.target_low}, {self.target_high}"
            )
        if self.min_samples < 1 or self.window < self.min_samples or self.pause_window < 1:
            raise ValueError("need 1 <= min_samples <= window and pause_window >= 1")
        if self.step_secs <= 0 or self.margin_secs < 0 or self.max_jump_secs <= 0:
            raise ValueError("need step_secs > 0, margin_secs >= 0 and max_jump_secs > 0")

    @property
    def target(self) -> float:
        """The middle of the band, which a jump aims at (hysteresis against flapping)."""
        return (self.target_low + self.target_high) / 2


@dataclass(frozen=True)
class DebounceState:
    """A snapshot of the controller, for metrics.

    Parameters:
        delay_secs: Current speculation delay.
        window_cancel_rate: Withdrawn / started over the last ``window`` outcomes (None if none).
        samples: Outcomes in that window.
        samples_since_change: Outcomes since the delay last changed (at most ``window``).
        changes: The changes so far, oldest first (bounded).
        pinned_reason: Why the delay stays at a bound although the rate is outside the band.
    """

    delay_secs: float
    window_cancel_rate: float | None
    samples: int
    samples_since_change: int
    changes: tuple[DebounceChange, ...] = field(default_factory=tuple)
    pinned_reason: str | None = None


@dataclass(frozen=True)
class DebounceSnapshot:
    """What the controller learned, to carry into a later session (see :meth:`AdaptiveDebounce.restore`).

    Parameters:
        delay_secs: The speculation delay.
        pauses: The pauses it learns from, oldest first: ``(seconds, resumed)``.
        outcomes: The reported window's outcomes, oldest first (True: withdrawn).
    """

    delay_secs: float
    pauses: tuple[tuple[float, bool], ...] = ()
    outcomes: tuple[bool, ...] = ()


class _Outcomes:
    """The last ``size`` outcomes and how many of them were withdrawals, in O(1) per outcome."""

    def __init__(self, size: int):
        self._items: deque[bool] = deque(maxlen=size)
        self.withdrawn = 0

    def __len__(self) -> int:
        return len(self._items)

    def append(self, withdrawn: bool):
        if len(self._items) == self._items.maxlen:
            self.withdrawn -= self._items[0]
        self._items.append(withdrawn)
        self.withdrawn += withdrawn

    def clear(self):
        self._items.clear()
        self.withdrawn = 0

    @property
    def rate(self) -> float | None:
        return self.withdrawn / len(self._items) if self._items else None


class AdaptiveDebounce:
    """Sets the speculation delay per session from observed outcomes and pauses.

    Call :meth:`record_pause` for every pause the strategy sees end (resumed or turn end), and
    :meth:`record_outcome` for every speculation outcome that says whether the guess was right
    (tool-call withdrawals are not such outcomes). Read :attr:`delay_secs` before arming a timer.
    """

    def __init__(self, params: DebounceParams | None = None):
        """Initialize the controller.

        Args:
            params: Tuning; the defaults keep 30-40 % of speculations cancelled.
        """
        self._params = params or DebounceParams()
        self._delay = self._params.initial_secs
        self._window = _Outcomes(self._params.window)
        # Outcomes since the last change, at most a window of them: a long stretch inside the
        # band must not slow the reaction to a change of speaker behaviour.
        self._since_change = _Outcomes(self._params.window)
        self._pauses: deque[tuple[float, bool]] = deque(maxlen=self._params.pause_window)
        self._changes: deque[DebounceChange] = deque(maxlen=_MAX_CHANGES_KEPT)
        self._pinned_reason: str | None = None

    def __str__(self):
        return "AdaptiveDebounce"

    @property
    def params(self) -> DebounceParams:
        """The tuning in force."""
        return self._params

    @property
    def delay_secs(self) -> float:
        """The current speculation delay, seconds after VAD stop."""
        return self._delay

    @property
    def changes(self) -> list[DebounceChange]:
        """The changes of the delay, oldest first (the last 100 in a very long session)."""
        return list(self._changes)

    @property
    def pinned_reason(self) -> str | None:
        """Why the delay stays at a bound although the rate is outside the band, if it does."""
        return self._pinned_reason

    @property
    def state(self) -> DebounceState:
        """A snapshot for metrics and logs."""
        return DebounceState(
            delay_secs=self._delay,
            window_cancel_rate=self._window.rate,
            samples=len(self._window),
            samples_since_change=len(self._since_change),
            changes=tuple(self._changes),
            pinned_reason=self._pinned_reason,
        )

    def snapshot(self) -> DebounceSnapshot:
        """What was learned: the delay, the pauses and the recent outcomes."""
        return DebounceSnapshot(
            delay_secs=self._delay,
            pauses=tuple(self._pauses),
            outcomes=tuple(self._window._items),
        )

    def restore(self, snapshot: DebounceSnapshot):
        """Continue from what an earlier session learned (a warm start).

        The delay is clamped into this controller's bounds (the tuning may have changed since);
        with ``adaptive=False`` it stays at ``initial_secs``, since a fixed delay was asked for.
        The pauses come back as evidence for the next jump and the outcomes as the reported
        window, but the count since the last change starts at zero: the restored delay stands
        until ``min_samples`` outcomes of this session argue against it.
        """
        p = self._params
        if p.adaptive:
            delay = min(p.max_secs, max(p.min_secs, snapshot.delay_secs))
            if abs(delay - snapshot.delay_secs) > 1e-9:
                logger.info(
                    f"{self}: restored delay {snapshot.delay_secs:.3f} s clamped to "
                    f"[{p.min_secs}, {p.max_secs}]"
                )
            self._delay = delay
        self._pauses.clear()
        self._pauses.extend((max(0.0, s), bool(r)) for s, r in snapshot.pauses)
        self._window.clear()
        for withdrawn in snapshot.outcomes:
            self._window.append(bool(withdrawn))
        self._since_change.clear()
        self._pinned_reason = None
        logger.info(
            f"{self}: warm start at {self._delay:.3f} s from {len(self._pauses)} pauses and "
            f"{len(self._window)} outcomes"
        )

    def record_pause(self, pause_secs: float, *, resumed: bool):
        """Record a pause the user made.

        Args:
            pause_secs: Silence from VAD stop until the user resumed (``resumed``) or until the
                turn was committed. Negative values are clamped to 0.
            resumed: True when the user went on speaking, False when the turn ended there.
        """
        self._pauses.append((max(0.0, pause_secs), resumed))

    def record_outcome(self, *, withdrawn: bool) -> DebounceChange | None:
        """Record a speculation outcome and adapt the delay if the rate left the band.

        Args:
            withdrawn: True if the speculation was withdrawn (resumed, extended, mismatch,
                timeout), False if the commit adopted it.

        Returns:
            The change made, or None.
        """
        self._window.append(withdrawn)
        self._since_change.append(withdrawn)
        if not self._params.adaptive or len(self._since_change) < self._params.min_samples:
            return None

        rate = self._since_change.rate
        assert rate is not None
        p = self._params
        # Half a sample of slack (a continuity correction): with 7 outcomes the rate moves in
        # steps of 14 %, and 3/7 = 43 % is as much "inside" a 30-40 % band as 2/7 = 29 % is.
        slack = 0.5 / len(self._since_change)
        if rate - slack <= p.target_high and rate + slack >= p.target_low:
            return None

        new, why = self._estimate(rate)
        step = max(-p.max_jump_secs, min(p.max_jump_secs, new - self._delay))
        if abs(step) < abs(new - self._delay):
            why += f"; moving at most {p.max_jump_secs:.2f} s at once"
        new = min(p.max_secs, max(p.min_secs, self._delay + step))
        if abs(new - self._delay) < 1e-3:
            # Pinned at a bound: nothing to change. Say so once, and start a fresh sample so the
            # rate reflects the present rather than a growing history.
            bound = "minimum" if rate < p.target_low else "maximum"
            reason = f"{why}; the delay is already at its {bound} {self._delay:.3f} s"
            if reason.split(";")[0] != (self._pinned_reason or "").split(";")[0]:
                logger.info(f"{self}: speculation delay stays at {self._delay:.3f} s ({reason})")
            self._pinned_reason = reason
            self._since_change.clear()
            return None
        return self._change(new, rate, why)

    def _estimate(self, rate: float) -> tuple[float, str]:
        """The delay to move to, and why, given an out-of-band rate."""
        p = self._params
        n = len(self._since_change)
        withdrawn = self._since_change.withdrawn
        direction = "above" if rate > p.target_high else "below"
        head = (
            f"cancel rate {rate:.0%} ({withdrawn}/{n}) {direction} "
            f"{p.target_low:.0%}-{p.target_high:.0%} band"
        )
        learned = self._delay_for_target()
        if learned is not None:
            d, predicted = learned
            moves_right_way = (rate > p.target_high and d > self._delay) or (
                rate < p.target_low and d < self._delay
            )
            if moves_right_way:
                resumed = sum(1 for _, r in self._pauses if r)
                return d, (
                    f"{head}; {len(self._pauses)} pauses ({resumed} resumed) say "
                    f"{d:.2f} s would have cancelled {predicted:.0%}"
                )
        step = p.step_secs if rate > p.target_high else -p.step_secs
        return self._delay + step, f"{head}; pauses do not explain it, fixed step {step:+.2f} s"

    def _delay_for_target(self) -> tuple[float, float] | None:
        """Shortest delay that would have cancelled at most the target rate on the pauses seen.

        A delay ``d`` speculates in every pause longer than ``d``: the resumed ones are the
        cancellations, the turn ends are the adoptions.
        """
        if not self._pauses or not any(not r for _, r in self._pauses):
            return None
        target = self._params.target
        ends = sum(1 for _, r in self._pauses if not r)
        resumed = sorted((s for s, r in self._pauses if r), reverse=True)
        # Candidates: 0, and just past each resumed pause (which it then no longer cancels).
        candidates = sorted({0.0, *(s + self._params.margin_secs for s in resumed)})
        for d in candidates:
            cancels = sum(1 for s in resumed if s > d)
            predicted = cancels / (cancels + ends)
            if predicted <= target:
                return d, predicted
        return None

    def _change(self, new: float, rate: float, why: str) -> DebounceChange:
        change = DebounceChange(
            old_secs=self._delay,
            new_secs=new,
            reason=why,
            window_cancel_rate=rate,
            samples=len(self._since_change),
        )
        logger.info(f"{self}: speculation delay {self._delay:.3f} s -> {new:.3f} s ({why})")
        self._delay = new
        self._changes.append(change)
        self._since_change.clear()
        self._pinned_reason = None
        return change
