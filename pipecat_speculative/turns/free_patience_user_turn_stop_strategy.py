"""The default commit rule: a silence floor, with the patience the held answer gives for free.

With speculation on, the answer to a turn is being prepared while the user is silent. Until that
answer is ready, committing the turn gains nothing: the user hears it at
``max(commit, answer ready)``. So this rule proposes the commit after a silence floor (Pipecat's
0.6 s speech timeout by default), and the
:class:`~pipecat_speculative.turns.speculative_user_turn_stop_strategy.SpeculativeUserTurnStopStrategy`
around it holds that commit until the held answer is reported ready, never past a ceiling::

    VAD stop |<- floor ->| proposed        |<- answer ready: commit (no latency cost)
             |<- delay ->| speculation ... |
             user resumes before the commit -> nothing was said, the turn goes on

A fixed 0.6 s timeout cuts a hesitant speaker off at every pause longer than ~0.6 s; this one
gives them as long as the answer needs anyway, and never delays an answer that is ready.
"""

from __future__ import annotations

from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)

__all__ = ["FreePatienceUserTurnStopStrategy"]


class FreePatienceUserTurnStopStrategy(SpeechTimeoutUserTurnStopStrategy):
    """Pipecat's speech timeout as the silence floor of the free-patience commit.

    On its own it is exactly ``SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=floor_secs)``
    (it keeps Pipecat's STT wait and transcript checks). Its patience comes from the speculative
    strategy wrapping it (``SpeculativeTurnParams.hold_commit_until_ready``).
    """

    def __init__(self, *, floor_secs: float = 0.6, **kwargs):
        """Initialize the rule.

        Args:
            floor_secs: Silence after VAD stop before a commit may happen at all: Pipecat's
                default speech timeout. An answer ready sooner waits for it, which keeps a
                fast LLM from answering every breath.
            **kwargs: Forwarded to ``SpeechTimeoutUserTurnStopStrategy``.
        """
        if floor_secs < 0:
            raise ValueError(f"floor_secs must be >= 0, got {floor_secs}")
        super().__init__(user_speech_timeout=floor_secs, **kwargs)
        self._floor_secs = floor_secs

    @property
    def floor_secs(self) -> float:
        """The silence floor, seconds after VAD stop."""
        return self._floor_secs
