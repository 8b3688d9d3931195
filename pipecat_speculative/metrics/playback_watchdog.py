"""A deadline for the end of the bot's playback, so a turn is never left open forever.

A turn's timing is complete when the output transport reports ``BotStoppedSpeakingFrame``. A client
that never reports (the reference deployment waited 15 s for a frontend that never did) would leave
the turn open and every later number misattributed. The watchdog knows how much audio was handed
to the output transport and when playback started, so it knows when playback must have ended::

    bot started ─┬─ audio 1.8 s ─────────────┐
                 │      last chunk delivered ─┴─ + its length ──┐
                 │                                              ├─ + margin ─► deadline
                 └──────────────────── playback must be over ───┘

The output transport writes audio in real time, so playback ends no earlier than
``bot_started + audio_secs``, and no earlier than the end of the last chunk when the TTS streams
slower than real time. The margin covers the transport's own silence detection (0.35 s in Pipecat
1.14) and scheduling noise.

While the answer is still being generated (a TTS context opened and not yet stopped) the audio so
far is not all there will be: an LLM that streams its next sentence slowly leaves a gap in which
Pipecat's output still counts the bot as speaking. The deadline then also allows ``stall_secs``,
so a slow answer is not cut off as a dead client, while a TTS that never stops still ends the turn.

This is a synchronous deadline computation with no task and no clock of its own: the owner feeds it
times from its clock and asks :meth:`PlaybackWatchdog.expired`.
"""

from __future__ import annotations

__all__ = ["PlaybackWatchdog"]


class PlaybackWatchdog:
    """Computes when the bot's playback must have ended.

    Args:
        margin_secs: Slack past the computed end of playback before the watchdog fires. 1.5 s
            covers the transport's 0.35 s stop detection several times over; a smaller margin
            fires on a merely slow client, a larger one keeps a dead client's turn open longer.
        stall_secs: Extra slack while the answer is still being generated, for the gap before
            its next audio (an LLM streaming its next sentence). 10 s is far beyond a healthy
            LLM's gap between sentences and still bounds a TTS that never reports stopping.
    """

    def __init__(self, margin_secs: float = 1.5, *, stall_secs: float = 10.0):
        if margin_secs < 0 or stall_secs < 0:
            raise ValueError(
                f"margin_secs and stall_secs must be >= 0, got {margin_secs}, {stall_secs}"
            )
        self._margin_secs = margin_secs
        self._stall_secs = stall_secs
        self._started_at: float | None = None
        self._audio_secs = 0.0
        self._last_chunk_end: float | None = None
        self._generating: set[str | None] = set()

    def __str__(self):
        return f"PlaybackWatchdog(margin={self._margin_secs:.2f}s)"

    @property
    def margin_secs(self) -> float:
        """Slack past the computed end of playback."""
        return self._margin_secs

    @property
    def armed(self) -> bool:
        """Whether playback has started and the watchdog is counting."""
        return self._started_at is not None

    @property
    def started_at(self) -> float | None:
        """When playback started, on the owner's clock."""
        return self._started_at

    @property
    def audio_secs(self) -> float:
        """Seconds of audio handed to the output so far."""
        return self._audio_secs

    @property
    def generating(self) -> bool:
        """Whether a TTS context of the answer is open (more audio may come)."""
        return bool(self._generating)

    @property
    def deadline(self) -> float | None:
        """When the watchdog fires, None until playback started."""
        if self._started_at is None:
            return None
        end = self._started_at + self._audio_secs
        if self._last_chunk_end is not None:
            end = max(end, self._last_chunk_end)
        return end + self._margin_secs + (self._stall_secs if self._generating else 0.0)

    def generation_started(self, context_id: str | None):
        """A TTS context of the answer opened (``TTSStartedFrame``): more audio is coming."""
        self._generating.add(context_id)

    def generation_stopped(self, context_id: str | None):
        """That TTS context finished (``TTSStoppedFrame``): its audio is all delivered."""
        self._generating.discard(context_id)

    def add_audio(self, at: float, secs: float):
        """Account for an audio chunk handed to the output transport.

        Audio delivered before playback started counts too: it is what playback starts with.

        Args:
            at: When the chunk was delivered.
            secs: Its duration.
        """
        if secs <= 0:
            return
        self._audio_secs += secs
        chunk_end = at + secs
        if self._last_chunk_end is None or chunk_end > self._last_chunk_end:
            self._last_chunk_end = chunk_end

    def start(self, at: float):
        """Playback started (the first ``BotStartedSpeakingFrame`` of the turn)."""
        if self._started_at is None:
            self._started_at = at

    def expired(self, now: float) -> bool:
        """Whether playback should have ended by ``now`` and the watchdog fires."""
        deadline = self.deadline
        return deadline is not None and now >= deadline

    def reset(self):
        """Forget the turn: disarmed, no audio."""
        self._started_at = None
        self._audio_secs = 0.0
        self._last_chunk_end = None
        self._generating.clear()
