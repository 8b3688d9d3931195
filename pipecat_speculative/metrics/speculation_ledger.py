"""Session-wide speculation accounting: outcomes, rates, wasted work, debounce and warmups.

The ledger is told each outcome once, when it happens, and each batch of wasted tokens or
characters when the service reports it (usage often arrives after the withdrawal: the OpenAI
stream reports it from its ``finally`` when cancelled). It answers with a
:class:`~pipecat_speculative.metrics.turn_record.SessionSummary` snapshot.

Rates:

- ``cancel_rate``: withdrawn / resolved, both excluding tool-call withdrawals. A tool call is
  withdrawn because tools never run speculatively, not because the guess was wrong, so counting it
  would push the debounce up for nothing (``WithdrawalReason.counts_toward_cancel_rate``).
- ``window_cancel_rate``: the same over the last ``window`` counted outcomes, which is what the
  cancel-rate alert watches (the adaptive debounce keeps its own window).
- ``hit_rate``: adopted / resolved, tool calls included: of everything speculated, how much was
  used.
"""

from __future__ import annotations

from collections import deque

from pipecat_speculative.metrics.turn_record import (
    HISTORY_LIMIT,
    DebounceEntry,
    SessionSummary,
    WarmupEntry,
)

__all__ = ["SpeculationLedger"]


class SpeculationLedger:
    """Counts speculation outcomes and wasted work over a session.

    Args:
        session_id: Id reported in the summary.
        window: Counted outcomes kept for ``window_cancel_rate``. 20 matches the default alert window:
            long enough that one hesitant sentence (2-3 withdrawals) does not swing it past the band.
    """

    def __init__(self, session_id: str, *, window: int = 20):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self._summary = SessionSummary(session_id=session_id, window=window)
        self._window: deque[bool] = deque(maxlen=window)
        self._counted_resolved = 0
        self._counted_withdrawn = 0

    @property
    def window_full(self) -> bool:
        """Whether the window holds ``window`` outcomes."""
        return len(self._window) == self._window.maxlen

    def speculation_started(self):
        """A speculative inference started."""
        self._summary.speculations_started += 1

    def speculation_adopted(self):
        """A speculation was adopted at commit."""
        self._summary.speculations_adopted += 1
        self._counted(withdrawn=False)
        self._update_rates()

    def speculation_withdrawn(self, *, counts_toward_cancel_rate: bool):
        """A speculation was withdrawn.

        Args:
            counts_toward_cancel_rate: False for tool-call withdrawals.
        """
        self._summary.speculations_withdrawn += 1
        if counts_toward_cancel_rate:
            self._counted(withdrawn=True)
        else:
            self._summary.tool_call_withdrawals += 1
        self._update_rates()

    def reclassify_withdrawal(self, *, counts_toward_cancel_rate: bool):
        """Correct a withdrawal already counted with the other classification.

        The strategy's reason can arrive after the frame that withdrew the speculation; when it
        says the opposite of what the frames suggested, the counts follow the strategy.
        """
        if counts_toward_cancel_rate:
            self._summary.tool_call_withdrawals -= 1
            self._counted(withdrawn=True)
        else:
            self._summary.tool_call_withdrawals += 1
            self._counted_resolved -= 1
            self._counted_withdrawn -= 1
            # Remove the most recent counted withdrawal from the window.
            for i in range(len(self._window) - 1, -1, -1):
                if self._window[i]:
                    del self._window[i]
                    break
        self._update_rates()

    def add_wasted(self, *, prompt: int = 0, completion: int = 0, characters: int = 0):
        """Add work reported for withdrawn speculations."""
        self._summary.wasted_prompt_tokens += prompt
        self._summary.wasted_completion_tokens += completion
        self._summary.wasted_tts_characters += characters

    def ttfb_ignored(self):
        """A bogus cancellation TTFB was ignored."""
        self._summary.ignored_ttfb += 1

    def turn_completed(self, *, answers: int, watchdog_fired: bool, withdrawn_without_usage: int):
        """A turn record was closed."""
        self._summary.turns += 1
        self._summary.withdrawn_without_usage += withdrawn_without_usage
        if answers > 0:
            self._summary.answered_turns += 1
        if answers > 1:
            self._summary.multi_answer_turns += 1
        if watchdog_fired:
            self._summary.playback_watchdog_fired += 1

    def late_answer(self):
        """Answer audio reached the output after its turn was closed."""
        self._summary.late_answers += 1

    def debounce_changed(self, entry: DebounceEntry):
        """The strategy changed the speculation delay."""
        s = self._summary
        s.debounce_history.append(entry)
        del s.debounce_history[:-HISTORY_LIMIT]
        s.debounce_changes += 1
        s.debounce_secs = entry.new_secs

    def debounce_observed(self, secs: float):
        """The strategy reported the delay in force (with a speculation it started)."""
        self._summary.debounce_secs = secs

    def warmup(self, entry: WarmupEntry):
        """A warmup was recorded."""
        s = self._summary
        s.warmups.append(entry)
        del s.warmups[:-HISTORY_LIMIT]
        s.warmups_recorded += 1

    def tuning(
        self,
        *,
        debounce_initial_secs: float | None = None,
        debounce_min_secs: float | None = None,
        commit_floor_secs: float | None = None,
        resume_backoff: float | None = None,
    ):
        """The strategy's settings, reported in the summary (None: unknown)."""
        s = self._summary
        s.debounce_initial_secs = debounce_initial_secs
        s.debounce_min_secs = debounce_min_secs
        s.commit_floor_secs = commit_floor_secs
        s.resume_backoff = resume_backoff

    def summary(self) -> SessionSummary:
        """A snapshot (a copy: later changes do not show in it)."""
        s = self._summary
        return SessionSummary(
            **{
                **{k: getattr(s, k) for k in SessionSummary.__dataclass_fields__},
                "debounce_history": list(s.debounce_history),
                "warmups": list(s.warmups),
            }
        )

    def _counted(self, *, withdrawn: bool):
        self._window.append(withdrawn)
        self._counted_resolved += 1
        if withdrawn:
            self._counted_withdrawn += 1

    def _update_rates(self):
        s = self._summary
        s.cancel_rate = (
            self._counted_withdrawn / self._counted_resolved if self._counted_resolved else None
        )
        s.window_samples = len(self._window)
        s.window_cancel_rate = sum(self._window) / len(self._window) if self._window else None
        resolved = s.speculations_adopted + s.speculations_withdrawn
        s.hit_rate = s.speculations_adopted / resolved if resolved else None
