"""Play a scenario into a pipeline: real speech, real silences, real time.

Two halves:

- :func:`render_turn` / :func:`render_scenario` turn the scenario's text into audio (Piper, see
  :mod:`~pipecat_speculative.scenarios.speech`) with the in-utterance pauses as real silence, the
  matching STT script for the Deepgram stand-in, and the ground truth: where each segment's
  speech really ends and whether the user was done after it.
- :class:`~pipecat_speculative.transports.scenario_audio_input.ScenarioAudioInput` is the input
  transport that plays rendered turns in real time; each turn it plays is reported as a
  :class:`TurnPlayback`.

Stream time: the input counts the audio it has sent since the pipeline started; a
:class:`TurnPlayback` gives a turn's ground truth in those seconds (and in wall-clock
``time.time()``, the clock of pipecat's frame timestamps), so a VAD stop or a transcript can be
compared with the true end of speech (t0 in ``docs/design.md``).

Typical use::

    rendered = await render_scenario(load_builtin_scenario("reference_conversation"))
    deepgram.set_script(rendered.script)           # the stand-in transcribes these words
    user = ScenarioAudioInput()                      # pipecat_speculative.transports
    pipeline = Pipeline([user, stt, user_aggregator, llm, tts, transport.output(), ...])
    ...
    playbacks = await user.play_scenario(rendered)  # waits for the bot between turns
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipecat_speculative.scenarios.scenario import Scenario, UserTurn
from pipecat_speculative.scenarios.speech import PiperSpeechSynthesizer, SynthesizedSpeech
from pipecat_speculative.standins.stt_script import ScriptSegment, ScriptWord, SttScript

__all__ = [
    "CHUNK_SECS",
    "SAMPLE_RATE",
    "RenderedScenario",
    "RenderedTurn",
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
