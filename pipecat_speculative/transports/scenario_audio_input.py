"""An input transport whose microphone plays rendered scenario turns in real time.

It is a :class:`BaseInputTransport`, so audio enters the pipeline exactly as from a real one:
20 ms :class:`InputAudioRawFrame` s in real time, silence whenever nobody speaks (an open
microphone). VAD then runs where it runs in a real 1.14 bot, on real speech and real pauses.
The turns come from :func:`~pipecat_speculative.scenarios.player.render_scenario`; each turn it
plays is reported as a :class:`~pipecat_speculative.scenarios.player.TurnPlayback`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_transport import TransportParams

from pipecat_speculative.pipecat_compat import call_event_handler, register_event_handler
from pipecat_speculative.scenarios.player import (
    CHUNK_SECS,
    SAMPLE_RATE,
    RenderedScenario,
    RenderedTurn,
    TurnPlayback,
)

__all__ = ["ScenarioAudioInput"]

_BYTES_PER_SEC = SAMPLE_RATE * 2


@dataclass
class _Speak:
    turn: RenderedTurn
    done: asyncio.Future
    playback: TurnPlayback | None = None
    sent: int = 0  # bytes of the turn already sent


@dataclass
class _Silence:
    remaining: int  # bytes
    done: asyncio.Future | None = None


@dataclass
class _WaitForBot:
    timeout_secs: float
    event: asyncio.Event | None
    playback: TurnPlayback | None
    stops_seen_at_start: int = -1
    elapsed: int = 0  # bytes of silence sent while waiting


class ScenarioAudioInput(BaseInputTransport):
    """An input transport whose microphone plays rendered scenario turns in real time.

    It sends one 20 ms :class:`InputAudioRawFrame` every 20 ms from the moment the pipeline
    starts: the current turn's audio while a turn is being spoken, digital silence otherwise.
    Frames go through :meth:`BaseInputTransport.push_audio_frame` like any transport's.

    Turns are played one after the other by :meth:`play_scenario` (waiting for the bot between
    turns), or one at a time by :meth:`speak`. Between turns the input keeps sending silence.

    The input notices the bot's speech from the ``BotStartedSpeakingFrame`` /
    ``BotStoppedSpeakingFrame`` the output transport sends upstream, which is how it knows the
    bot has finished answering. A pipeline without an output transport passes an
    :class:`asyncio.Event` to :meth:`play_scenario` instead, or does not wait.

    Event handlers:

    - ``on_turn_started(input, playback)``: the first chunk of a turn was pushed.
    - ``on_turn_spoken(input, playback)``: the last chunk of a turn was pushed.
    """

    def __init__(
        self,
        *,
        params: TransportParams | None = None,
        chunk_secs: float = CHUNK_SECS,
        **kwargs,
    ):
        """Initialize the input.

        Args:
            params: Transport parameters; audio input is always enabled at 16 kHz mono.
            chunk_secs: Audio per frame (20 ms, like WebRTC).
            **kwargs: Passed to :class:`BaseInputTransport`.
        """
        params = params or TransportParams()
        params.audio_in_enabled = True
        params.audio_in_sample_rate = SAMPLE_RATE
        params.audio_in_channels = 1
        super().__init__(params, **kwargs)
        self._chunk_bytes = int(round(chunk_secs * SAMPLE_RATE)) * 2
        self._chunk_secs = self._chunk_bytes / _BYTES_PER_SEC
        self._feeder_task: asyncio.Task | None = None
        self._actions: deque[_Speak | _Silence | _WaitForBot] = deque()
        self._sent_bytes = 0
        self._bot_speaking = False
        self._bot_stops = 0
        self._playbacks: list[TurnPlayback] = []
        register_event_handler(self, "on_turn_started")
        register_event_handler(self, "on_turn_spoken")

    # -- public API -----------------------------------------------------------------------------

    @property
    def stream_position_secs(self) -> float:
        """Seconds of audio sent since the pipeline started."""
        return self._sent_bytes / _BYTES_PER_SEC

    @property
    def playbacks(self) -> list[TurnPlayback]:
        """Every turn played so far, in order."""
        return list(self._playbacks)

    @property
    def bot_speaking(self) -> bool:
        """Whether the output transport last reported the bot speaking."""
        return self._bot_speaking

    def speak(self, turn: RenderedTurn) -> asyncio.Future[TurnPlayback]:
        """Queue a turn; it is spoken after whatever is queued before it.

        Args:
            turn: The rendered turn.

        Returns:
            A future resolved with the playback once the turn's last chunk was pushed. Awaiting
            it is optional; it is cancelled if the pipeline stops first.
        """
        done: asyncio.Future[TurnPlayback] = asyncio.get_running_loop().create_future()
        self._actions.append(_Speak(turn=turn, done=done))
        return done

    def send_silence(self, secs: float) -> asyncio.Future[None]:
        """Queue silence of ``secs`` seconds of stream time.

        Args:
            secs: Silence to send before the next queued action.

        Returns:
            A future resolved once that silence was sent.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._actions.append(_Silence(remaining=self._bytes(secs), done=done))
        return done

    async def play_scenario(
        self,
        rendered: RenderedScenario,
        *,
        lead_in_secs: float = 0.5,
        wait_for_bot: bool = True,
        bot_finished: asyncio.Event | None = None,
        bot_timeout_secs: float = 20.0,
        gap_after_bot_secs: float | None = None,
    ) -> list[TurnPlayback]:
        """Play every turn of a scenario, the user waiting for the bot between turns.

        After each turn (the last one included, so that the call returns once the conversation
        is over) the user waits until the bot has finished answering (a
        ``BotStoppedSpeakingFrame`` after the turn ended, or ``bot_finished`` being set), at
        most ``bot_timeout_secs``; between turns then ``gap_after_bot_secs`` of silence.
        Silence is sent throughout, as from an open microphone.

        Args:
            rendered: The rendered scenario.
            lead_in_secs: Silence before the first turn (VAD and STT need a moment).
            wait_for_bot: Whether to wait for the bot's answer between turns. Without it the
                user only leaves ``gap_after_bot_secs`` between turns.
            bot_finished: An event that says the bot finished answering, instead of the
                ``BotStoppedSpeakingFrame``; it is cleared when each turn starts.
            bot_timeout_secs: Longest wait for an answer; a turn the bot never answers is
                marked ``bot_answered=False`` and the scenario goes on.
            gap_after_bot_secs: Silence after the answer; the scenario's ``gap_after_bot_ms``
                by default.

        Returns:
            The playbacks of the scenario's turns.
        """
        gap = rendered.gap_after_bot_secs if gap_after_bot_secs is None else gap_after_bot_secs
        loop = asyncio.get_running_loop()
        futures = []
        if lead_in_secs > 0:
            self._actions.append(_Silence(remaining=self._bytes(lead_in_secs)))
        for i, turn in enumerate(rendered.turns):
            done: asyncio.Future[TurnPlayback] = loop.create_future()
            speak = _Speak(turn=turn, done=done)
            self._actions.append(speak)
            futures.append(done)
            last = i == len(rendered.turns) - 1
            if wait_for_bot:
                self._actions.append(
                    _WaitForBot(timeout_secs=bot_timeout_secs, event=bot_finished, playback=None)
                )
            if not last and gap > 0:
                self._actions.append(_Silence(remaining=self._bytes(gap)))
        finished: asyncio.Future[None] = loop.create_future()
        self._actions.append(_Silence(remaining=0, done=finished))
        await finished
        return [f.result() for f in futures]

    # -- transport lifecycle ----------------------------------------------------------------------

    async def start(self, frame: StartFrame):
        """Start sending audio (silence until a turn is queued)."""
        await super().start(frame)
        await self.set_transport_ready(frame)
        if not self._feeder_task:
            self._feeder_task = self.create_task(self._feed(), f"{self}::feeder")

    async def stop(self, frame: EndFrame):
        """Stop the microphone."""
        await self._stop_feeder()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame):
        """Stop the microphone at once."""
        await self._stop_feeder()
        await super().cancel(frame)

    async def cleanup(self):
        """Release the feeder task."""
        await self._stop_feeder()
        await super().cleanup()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Watch the bot's speech (frames the output transport sends upstream)."""
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            self._bot_stops += 1
        await super().process_frame(frame, direction)

    # -- feeder -----------------------------------------------------------------------------------

    def _bytes(self, secs: float) -> int:
        return int(round(secs * SAMPLE_RATE)) * 2

    async def _stop_feeder(self):
        if self._feeder_task:
            await self.cancel_task(self._feeder_task)
            self._feeder_task = None
        while self._actions:
            action = self._actions.popleft()
            done = getattr(action, "done", None)
            if done is not None and not done.done():
                done.cancel()

    async def _feed(self):
        """Push one chunk per chunk period, on an absolute schedule (no drift)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        n = 0
        while True:
            chunk = await self._next_chunk()
            await self.push_audio_frame(
                InputAudioRawFrame(audio=chunk, sample_rate=SAMPLE_RATE, num_channels=1)
            )
            self._sent_bytes += len(chunk)
            n += 1
            # If the loop fell behind (a busy machine), catch up instead of drifting: a real
            # transport buffers and delivers late audio in a burst too.
            delay = started + n * self._chunk_secs - loop.time()
            await asyncio.sleep(max(0.0, delay))

    async def _next_chunk(self) -> bytes:
        size = self._chunk_bytes
        while self._actions:
            action = self._actions[0]
            if isinstance(action, _Silence):
                if action.remaining <= 0:
                    self._actions.popleft()
                    if action.done and not action.done.done():
                        action.done.set_result(None)
                    continue
                action.remaining -= size
                return b"\x00" * size
            if isinstance(action, _WaitForBot):
                if self._bot_wait_over(action):
                    self._actions.popleft()
                    continue
                action.elapsed += size
                return b"\x00" * size
            return await self._speak_chunk(action, size)
        return b"\x00" * size

    def _bot_wait_over(self, action: _WaitForBot) -> bool:
        if action.stops_seen_at_start < 0:
            action.stops_seen_at_start = self._bot_stops
            action.playback = self._playbacks[-1] if self._playbacks else None
        if action.event is not None:
            answered = action.event.is_set()
        else:
            answered = self._bot_stops > action.stops_seen_at_start and not self._bot_speaking
        timed_out = action.elapsed >= self._bytes(action.timeout_secs)
        if answered or timed_out:
            if action.playback is not None:
                action.playback.bot_answered = answered
            if timed_out and not answered:
                index = action.playback.turn.index if action.playback else "?"
                if self._bot_speaking:
                    logger.warning(
                        f"{self}: the bot was still speaking {action.timeout_secs:.1f} s after "
                        f"turn {index}; the user goes on over it"
                    )
                else:
                    logger.warning(
                        f"{self}: no bot answer within {action.timeout_secs:.1f} s after turn "
                        f"{index}; going on"
                    )
            return True
        return False

    async def _speak_chunk(self, action: _Speak, size: int) -> bytes:
        turn = action.turn
        now = time.time()
        if action.playback is None:
            action.playback = TurnPlayback(
                turn=turn, stream_start_secs=self.stream_position_secs, wall_start=now
            )
            self._playbacks.append(action.playback)
            for waiter in self._actions:
                if isinstance(waiter, _WaitForBot) and waiter.event is not None:
                    waiter.event.clear()
            logger.debug(f"{self}: user turn {turn.index} starts: {turn.turn.text!r}")
            await call_event_handler(self, "on_turn_started", action.playback)
        playback = action.playback
        begin = action.sent
        chunk = turn.pcm[begin : begin + size]
        action.sent += len(chunk)
        # Wall-clock end of speech of each segment whose end lies in this chunk.
        for truth in turn.segments[len(playback.segment_end_wall) :]:
            end_byte = int(round(truth.speech_end_secs * SAMPLE_RATE)) * 2
            if end_byte > action.sent:
                break
            playback.segment_end_wall.append(now + (end_byte - begin) / _BYTES_PER_SEC)
        if action.sent >= len(turn.pcm):
            self._actions.popleft()
            logger.debug(f"{self}: user turn {turn.index} spoken")
            if not action.done.done():
                action.done.set_result(playback)
            await call_event_handler(self, "on_turn_spoken", playback)
        if len(chunk) < size:
            chunk = chunk + b"\x00" * (size - len(chunk))
        return chunk
