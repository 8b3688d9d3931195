"""Play a scenario into a pipeline: real speech, real silences, real time.

Two halves:

- :func:`render_turn` / :func:`render_scenario` turn the scenario's text into audio (Piper, see
  :mod:`~pipecat_speculative.scenarios.speech`) with the in-utterance pauses as real silence, the
  matching STT script for the Deepgram stand-in, and the ground truth: where each segment's
  speech really ends and whether the user was done after it.
- :class:`ScenarioAudioInput` is an input transport (a :class:`BaseInputTransport`, so audio
  enters the pipeline exactly as from a real one) that plays rendered turns in real time as
  20 ms :class:`InputAudioRawFrame` s, and sends silence whenever nobody speaks, like an open
  microphone. VAD then runs where it runs in a real 1.14 bot (in the user aggregator, or a
  ``VADProcessor``) on real speech and real pauses.

Stream time: the input counts the audio it has sent since the pipeline started; a
:class:`TurnPlayback` gives a turn's ground truth in those seconds (and in wall-clock
``time.time()``, the clock of pipecat's frame timestamps), so a VAD stop or a transcript can be
compared with the true end of speech (t0 in ``docs/design.md``).

Typical use::

    rendered = await render_scenario(load_builtin_scenario("reference_conversation"))
    deepgram.set_script(rendered.script)           # the stand-in transcribes these words
    user = ScenarioAudioInput()
    pipeline = Pipeline([user, stt, user_aggregator, llm, tts, transport.output(), ...])
    ...
    playbacks = await user.play_scenario(rendered)  # waits for the bot between turns
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

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
from pipecat_speculative.scenarios.scenario import Scenario, UserTurn
from pipecat_speculative.scenarios.speech import PiperSpeechSynthesizer, SynthesizedSpeech
from pipecat_speculative.standins.stt_script import ScriptSegment, ScriptWord, SttScript

__all__ = [
    "CHUNK_SECS",
    "SAMPLE_RATE",
    "RenderedScenario",
    "RenderedTurn",
    "ScenarioAudioInput",
    "SegmentTruth",
    "TurnPlayback",
    "render_scenario",
    "render_turn",
]

SAMPLE_RATE = 16000
"""Sample rate of rendered speech and of the frames the input sends."""

CHUNK_SECS = 0.02
"""Audio per frame: 20 ms, what WebRTC and Daily transports deliver."""

_BYTES_PER_SEC = SAMPLE_RATE * 2


@dataclass(frozen=True)
class SegmentTruth:
    """Ground truth for one speech segment, in seconds from the start of its turn's audio.

    Parameters:
        index: Position in the turn.
        text: What was said.
        speech_start_secs: First voiced sample.
        speech_end_secs: Last voiced sample: the real end of speech (t0) if a turn ends here.
        pause_after_secs: Silence that follows inside the turn (0 for the last segment).
        user_done: Whether the user was done after this segment (the last one of the turn).
    """

    index: int
    text: str
    speech_start_secs: float
    speech_end_secs: float
    pause_after_secs: float
    user_done: bool

    def shifted(self, offset_secs: float) -> SegmentTruth:
        """The same truth with times moved by ``offset_secs`` (turn time → stream time)."""
        return SegmentTruth(
            index=self.index,
            text=self.text,
            speech_start_secs=self.speech_start_secs + offset_secs,
            speech_end_secs=self.speech_end_secs + offset_secs,
            pause_after_secs=self.pause_after_secs,
            user_done=self.user_done,
        )


@dataclass(frozen=True)
class RenderedTurn:
    """One user turn as audio, STT script and ground truth.

    Parameters:
        index: Position of the turn in its scenario.
        turn: The scenario turn.
        pcm: 16 kHz mono PCM16: speech, in-utterance pauses as digital silence, speech... It
            starts with the first voiced sample and ends with the last one.
        segments: Ground truth per segment, relative to the start of ``pcm``.
        script: The words for the Deepgram stand-in: one segment per speech segment, anchored
            at the speech onset the stand-in detects, word ends relative to the segment start.
    """

    index: int
    turn: UserTurn
    pcm: bytes
    segments: tuple[SegmentTruth, ...]
    script: SttScript

    @property
    def sample_rate(self) -> int:
        """Samples per second of ``pcm``."""
        return SAMPLE_RATE

    @property
    def duration_secs(self) -> float:
        """Length of the turn's audio."""
        return len(self.pcm) / _BYTES_PER_SEC

    @property
    def speech_end_secs(self) -> float:
        """When the user is done: the end of the last segment (turn time)."""
        return self.segments[-1].speech_end_secs

    def chunks(self, chunk_secs: float = CHUNK_SECS) -> list[bytes]:
        """The audio cut in chunks of ``chunk_secs`` (the last one zero-padded).

        Args:
            chunk_secs: Chunk length; 20 ms by default.

        Returns:
            The chunks.
        """
        size = int(round(chunk_secs * SAMPLE_RATE)) * 2
        out = [self.pcm[i : i + size] for i in range(0, len(self.pcm), size)]
        if out and len(out[-1]) < size:
            out[-1] = out[-1] + b"\x00" * (size - len(out[-1]))
        return out

    def script_at(self, stream_offset_secs: float) -> SttScript:
        """The script with fixed starts, for a stream where this turn begins at an offset.

        Args:
            stream_offset_secs: Where the turn's audio starts in the connection's stream.

        Returns:
            A script whose segments start at fixed stream positions.
        """
        return SttScript.of(
            ScriptSegment(
                s.words, s.duration_secs, start_secs=stream_offset_secs + t.speech_start_secs
            )
            for s, t in zip(self.script.segments, self.segments, strict=True)
        )


@dataclass(frozen=True)
class RenderedScenario:
    """A whole scenario rendered.

    Parameters:
        scenario: The scenario.
        turns: Its turns, rendered.
    """

    scenario: Scenario
    turns: tuple[RenderedTurn, ...]

    @property
    def script(self) -> SttScript:
        """The STT script of the whole conversation (onset-anchored, so gaps may vary)."""
        script = SttScript()
        for turn in self.turns:
            script = script + turn.script
        return script

    @property
    def gap_after_bot_secs(self) -> float:
        """How long the user waits after the bot's answer."""
        return self.scenario.gap_after_bot_ms / 1000.0


def _silence(secs: float) -> bytes:
    return b"\x00\x00" * int(round(secs * SAMPLE_RATE))


def _assemble(index: int, turn: UserTurn, speeches: Sequence[SynthesizedSpeech]) -> RenderedTurn:
    pcm = bytearray()
    truths = []
    segments = []
    for k, (segment, speech) in enumerate(zip(turn.segments, speeches, strict=True)):
        if speech.sample_rate != SAMPLE_RATE:
            raise ValueError(f"speech must be {SAMPLE_RATE} Hz, got {speech.sample_rate}")
        start = len(pcm) / _BYTES_PER_SEC
        pcm += speech.pcm
        end = len(pcm) / _BYTES_PER_SEC
        last = k == len(turn.segments) - 1
        pause = 0.0 if last else segment.pause_after_ms / 1000.0
        truths.append(SegmentTruth(k, segment.text, start, end, pause, last))
        words = tuple(ScriptWord(w.word, w.end_secs, w.start_secs) for w in speech.words)
        segments.append(ScriptSegment(words=words, duration_secs=speech.duration_secs))
        if not last:
            pcm += _silence(pause)
    return RenderedTurn(
        index=index,
        turn=turn,
        pcm=bytes(pcm),
        segments=tuple(truths),
        script=SttScript.of(segments),
    )


def render_turn(
    turn: UserTurn,
    *,
    index: int = 0,
    synthesizer: PiperSpeechSynthesizer | None = None,
    speaking_rate: float = 1.0,
) -> RenderedTurn:
    """Synthesize one turn (blocking; cached segments are instant).

    Args:
        turn: The turn.
        index: Its position in the scenario.
        synthesizer: The synthesizer; a default :class:`PiperSpeechSynthesizer` when None.
        speaking_rate: Speech speed (>1 faster).

    Returns:
        The rendered turn.

    Raises:
        SpeechSynthesisUnavailableError: If Piper or its voice is not installed.
    """
    synthesizer = synthesizer or PiperSpeechSynthesizer()
    speeches = [synthesizer.synthesize(s.text, speaking_rate=speaking_rate) for s in turn.segments]
    return _assemble(index, turn, speeches)


async def render_scenario(
    scenario: Scenario, *, synthesizer: PiperSpeechSynthesizer | None = None
) -> RenderedScenario:
    """Synthesize every turn of a scenario, off the event loop.

    Args:
        scenario: The scenario.
        synthesizer: The synthesizer; a default :class:`PiperSpeechSynthesizer` when None.

    Returns:
        The rendered scenario.

    Raises:
        SpeechSynthesisUnavailableError: If Piper or its voice is not installed.
    """
    synthesizer = synthesizer or PiperSpeechSynthesizer()

    def render_all() -> tuple[RenderedTurn, ...]:
        return tuple(
            render_turn(t, index=i, synthesizer=synthesizer, speaking_rate=scenario.speaking_rate)
            for i, t in enumerate(scenario.turns)
        )

    turns = await asyncio.to_thread(render_all)
    return RenderedScenario(scenario=scenario, turns=turns)


# ---------------------------------------------------------------------------------------------
# Real-time input
# ---------------------------------------------------------------------------------------------


@dataclass
class TurnPlayback:
    """A turn as it was actually played.

    Parameters:
        turn: The rendered turn.
        stream_start_secs: Stream position of the turn's first sample.
        wall_start: ``time.time()`` when its first chunk was pushed.
        segment_end_wall: ``time.time()`` at each segment's true end of speech (the push of
            the chunk holding it, plus the offset inside the chunk).
        bot_answered: Whether a bot answer ended after the turn (None until known, or when the
            player was not asked to wait for the bot).
    """

    turn: RenderedTurn
    stream_start_secs: float
    wall_start: float
    segment_end_wall: list[float] = field(default_factory=list)
    bot_answered: bool | None = None

    @property
    def segments(self) -> tuple[SegmentTruth, ...]:
        """Ground truth in stream seconds."""
        return tuple(s.shifted(self.stream_start_secs) for s in self.turn.segments)

    @property
    def speech_end_stream_secs(self) -> float:
        """When the user was done, in stream seconds."""
        return self.stream_start_secs + self.turn.speech_end_secs

    @property
    def speech_end_wall(self) -> float | None:
        """When the user was done, in ``time.time()`` seconds (None before it was played)."""
        return self.segment_end_wall[-1] if self.segment_end_wall else None


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
