"""A commit rule whose speech timeout follows how long the speculative answer takes to be ready.

With speculation on, the answer to a turn starts being prepared ``delay`` seconds after VAD stop and
its first audio is ready ``readiness`` seconds later. Committing any earlier than that gains
nothing: the user hears the answer at ``max(commit, speculation start + readiness)``. Committing
later costs latency. So the commit delay that costs nothing is::

    VAD stop |<- delay ->| speculation start |<------- readiness ------->| first audio ready
             |<----------- commit delay = delay + readiness - margin --->| commit

A fixed 0.6 s timeout cuts a hesitant speaker off at every pause longer than ~0.6 s; this one waits
as long as the answer needs anyway (about 1.1-1.5 s in the reference profile), which lets most of
those speakers finish, at no latency cost when the speculation is adopted.
"""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger
from pipecat.frames.frames import VADUserStoppedSpeakingFrame
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)

from pipecat_speculative.pipecat_compat import set_user_speech_timeout

__all__ = ["FreePatienceUserTurnStopStrategy"]


class FreePatienceUserTurnStopStrategy(SpeechTimeoutUserTurnStopStrategy):
    """Speech-timeout commit whose timeout is ``delay + readiness - margin``, clamped.

    Feed it measurements with :meth:`observe_answer_readiness` (the turn timing observer does, from
    LLM time to first token plus TTS first audio); until then it uses ``initial_readiness_secs``.
    The timeout is recomputed at every VAD stop: Pipecat's ``SpeechTimeoutUserTurnStopStrategy``
    reads it whenever it restarts its timer.
    """

    def __init__(
        self,
        *,
        initial_readiness_secs: float = 1.2,
        margin_secs: float = 0.1,
        min_timeout_secs: float = 0.6,
        max_timeout_secs: float = 2.0,
        smoothing: float = 0.3,
        **kwargs,
    ):
        """Initialize the strategy.

        Args:
            initial_readiness_secs: Assumed time from speculation start to the answer's first audio
                before anything is measured (the reference profile's LLM first sentence + TTS
                first audio is about 1.1-1.3 s).
            margin_secs: Commit this much before the answer is expected to be ready, so a slightly
                fast answer is not held waiting for the commit.
            min_timeout_secs: Floor: never commit sooner than Pipecat's default speech timeout.
            max_timeout_secs: Ceiling: an outlier measurement (a cold connection, a slow model) must
                not make the bot wait seconds for a user who has finished.
            smoothing: Weight of a new measurement in the moving average (0-1].
            **kwargs: Forwarded to ``SpeechTimeoutUserTurnStopStrategy``.
        """
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        if not 0 <= min_timeout_secs <= max_timeout_secs:
            raise ValueError("need 0 <= min_timeout_secs <= max_timeout_secs")
        super().__init__(user_speech_timeout=min_timeout_secs, **kwargs)
        self._readiness = initial_readiness_secs
        self._margin = margin_secs
        self._min = min_timeout_secs
        self._max = max_timeout_secs
        self._smoothing = smoothing
        self._delay_provider: Callable[[], float] = lambda: 0.0
        set_user_speech_timeout(self, self.commit_delay_secs)

    @property
    def readiness_secs(self) -> float:
        """Current estimate of speculation start → first audio ready, seconds."""
        return self._readiness

    @property
    def commit_delay_secs(self) -> float:
        """The speech timeout the next VAD stop will use."""
        wanted = self._delay_provider() + self._readiness - self._margin
        return min(self._max, max(self._min, wanted))

    def set_speculation_delay_provider(self, provider: Callable[[], float]):
        """Tell the rule where to read the current speculation delay (the adaptive debounce)."""
        self._delay_provider = provider

    def observe_answer_readiness(self, secs: float):
        """Feed one measured speculation start → first audio ready duration, seconds."""
        if secs <= 0:
            return
        old = self._readiness
        self._readiness = (1 - self._smoothing) * old + self._smoothing * secs
        logger.trace(
            f"{self}: readiness {old:.3f} s -> {self._readiness:.3f} s (measured {secs:.3f})"
        )

    async def _handle_vad_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame):
        set_user_speech_timeout(self, self.commit_delay_secs)
        await super()._handle_vad_user_stopped_speaking(frame)
