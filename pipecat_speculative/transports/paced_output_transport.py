"""An output transport with no speaker that still plays audio at the pace of one.

Offline (the demo, the bench, tests) there is nothing to play the bot's audio on, yet the timing
of ``BotStartedSpeakingFrame`` / ``BotStoppedSpeakingFrame`` is what the turn timing observer and
the simulated user depend on: the user waits for the bot to finish before the next turn, and an
answer that "plays" instantly would let the conversation run ahead of a real one. So
:meth:`PacedOutputTransport.write_audio_frame` takes as long as a sound card would: each chunk
returns once the previous chunks' duration has elapsed, on an absolute schedule (no drift), like
the playback clock of Pipecat's WebSocket transports.

The audio itself goes nowhere (record it with an ``AudioBufferProcessor`` after this transport).
``speed`` > 1 plays faster than real time; first audio is still timed exactly (the first chunk
is written at once), only the bot's turns get shorter. Timed frames (the TTS's word
timestamps) are brought forward by the same factor so the spoken text keeps up with the audio. The bench uses it to fit the stand-in's
long answers in its time budget; the demo plays in real time.
"""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import Frame, OutputAudioRawFrame, StartFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

__all__ = ["PacedOutputTransport"]


class PacedOutputTransport(BaseOutputTransport):
    """A speakerless output transport that writes audio in (scaled) real time.

    Args:
        params: Transport parameters; audio output is always enabled.
        speed: Playback speed (1.0 is real time). Must be > 0.
        **kwargs: Passed to :class:`BaseOutputTransport`.
    """

    def __init__(self, params: TransportParams | None = None, *, speed: float = 1.0, **kwargs):
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        params = params or TransportParams()
        params.audio_out_enabled = True
        super().__init__(params, **kwargs)
        self._speed = speed
        self._next_write: float | None = None
        self._played_secs = 0.0

    @property
    def speed(self) -> float:
        """Playback speed (1.0 is real time)."""
        return self._speed

    @property
    def played_secs(self) -> float:
        """Seconds of audio written so far (audio time, not wall time)."""
        return self._played_secs

    async def start(self, frame: StartFrame):
        """Start the output and declare it ready (there is no connection to wait for)."""
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Bring timed frames (word timestamps) onto the sped-up playback clock."""
        if self._speed != 1.0 and frame.pts and not isinstance(frame, OutputAudioRawFrame):
            # A TTS stamps each word with when it will be heard at real-time playback; faster
            # playback hears it sooner. Without this the words (and the EndFrame queued behind
            # them) would reach the assistant context long after the audio finished.
            now = self.get_clock().get_time()
            frame.pts = now + max(0, frame.pts - now) / self._speed
        await super().process_frame(frame, direction)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        """Take one chunk, returning when a speaker would be ready for the next one.

        Args:
            frame: The audio chunk.

        Returns:
            Always True: the chunk was "played".
        """
        bytes_per_sec = frame.sample_rate * max(frame.num_channels, 1) * 2
        secs = len(frame.audio) / bytes_per_sec if bytes_per_sec else 0.0
        self._played_secs += secs
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next_write is None or now > self._next_write:
            # Idle (or late): this chunk starts playing now.
            self._next_write = now
        self._next_write += secs / self._speed
        await asyncio.sleep(max(0.0, self._next_write - now))
        return True
