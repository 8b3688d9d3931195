"""Scripted speech for the STT stand-ins: which words the user says and where they end in audio.

Real faster-whisper is not available everywhere the tests run, so the Deepgram stand-in does not
recognize speech: it is *told* the words. What it is not told is *when*: words are released as
the audio that carries them arrives on the connection, so transcripts follow the audio actually
received (a slow feeder, a dropped socket or a VAD stop all move them the way they would move a
real STT's).

A script is a list of :class:`ScriptSegment`, one per stretch of continuous speech. Word times
are relative to the segment start, in seconds of audio. A segment starts either

- at a fixed position of the connection's audio stream (``start_secs``), or
- (``start_secs=None``, the default) at the next *speech onset* detected in the received audio:
  the first sample louder than ``ONSET_LEVEL`` after at least ``ONSET_MIN_SILENCE_SECS`` of
  quieter audio, once the previous segment's audio has fully arrived. Anchoring on onsets makes
  a script independent of how long the user waited between turns, which is only known at run
  time (the simulated user waits for the bot).

:class:`ScriptCursor` is the shared position in a script. Connections that play the same
registered script share one cursor, so a connection opened after a drop continues with the next
segment instead of replaying the conversation from its start. A segment that was being spoken
when its connection closed is lost, like the in-flight audio of a real dropped socket.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ONSET_LEVEL",
    "ONSET_MIN_SILENCE_SECS",
    "REPLAY_MATCH_SECS",
    "HeardWord",
    "LostSegment",
    "ScriptCursor",
    "ScriptSegment",
    "ScriptTracker",
    "ScriptWord",
    "SttScript",
    "TrackerUpdate",
    "words_text",
]

ONSET_LEVEL = 328
"""Absolute int16 sample level (1 % of full scale) above which audio counts as speech."""

ONSET_MIN_SILENCE_SECS = 0.1
REPLAY_MATCH_SECS = 0.1
"""Audio from a lost segment's onset kept to recognize the same audio sent again after a drop."""
"""Quiet audio needed before a speech onset counts (shorter than a fast talker's 0.25 s breath)."""

_STRIP = re.compile(r"^[^\w']+|[^\w']+$")


@dataclass(frozen=True)
class ScriptWord:
    """One word of a segment.

    Parameters:
        text: The word as it appears in a punctuated transcript (``"points,"``).
        end_secs: Where the word ends, seconds of audio from the segment start.
        start_secs: Where it starts; defaults to the previous word's end.
    """

    text: str
    end_secs: float
    start_secs: float | None = None

    @property
    def bare(self) -> str:
        """The word lowercased without surrounding punctuation, as Deepgram's ``word``."""
        return _STRIP.sub("", self.text).lower() or self.text.lower()


@dataclass(frozen=True)
class ScriptSegment:
    """One stretch of continuous speech.

    Parameters:
        words: The words, in order, with monotone end times within ``duration_secs``.
        duration_secs: Length of the segment's audio. The segment is over (a pause may begin)
            once this much audio has arrived after its start.
        start_secs: Fixed start in the connection's audio stream; ``None`` anchors the segment
            at the next detected speech onset.
    """

    words: tuple[ScriptWord, ...]
    duration_secs: float
    start_secs: float | None = None

    def __post_init__(self):
        if not self.words:
            raise ValueError("a script segment needs at least one word")
        if self.duration_secs <= 0:
            raise ValueError(f"duration_secs must be > 0, got {self.duration_secs}")
        previous = 0.0
        for word in self.words:
            if word.end_secs < previous - 1e-9 or word.end_secs > self.duration_secs + 1e-6:
                raise ValueError(
                    f"word {word.text!r} ends at {word.end_secs:.3f} s: word ends must be "
                    f"monotone and within the segment ({self.duration_secs:.3f} s)"
                )
            previous = word.end_secs

    @classmethod
    def from_text(
        cls, text: str, duration_secs: float, *, start_secs: float | None = None
    ) -> ScriptSegment:
        """Build a segment whose words are spread evenly over ``duration_secs``.

        Args:
            text: The words, separated by whitespace.
            duration_secs: Length of the segment's audio.
            start_secs: Fixed start, or ``None`` to anchor at a speech onset.

        Returns:
            The segment.
        """
        tokens = text.split()
        n = len(tokens)
        words = tuple(
            ScriptWord(t, duration_secs * (i + 1) / n, duration_secs * i / n)
            for i, t in enumerate(tokens)
        )
        return cls(words=words, duration_secs=duration_secs, start_secs=start_secs)


@dataclass(frozen=True)
class SttScript:
    """What a simulated user says on an STT connection, segment by segment.

    Parameters:
        segments: The segments, in the order they are spoken.
    """

    segments: tuple[ScriptSegment, ...] = ()

    def __add__(self, other: SttScript) -> SttScript:
        return SttScript(self.segments + other.segments)

    @classmethod
    def of(cls, segments: Iterable[ScriptSegment]) -> SttScript:
        """Build a script from any iterable of segments."""
        return cls(tuple(segments))

    @property
    def text(self) -> str:
        """All words, space separated."""
        return " ".join(w.text for s in self.segments for w in s.words)


class ScriptCursor:
    """The shared position in a script: the next segment no connection has started yet."""

    def __init__(self, script: SttScript):
        """Initialize the cursor at the first segment.

        Args:
            script: The script to play.
        """
        self.script = script
        self._next = 0

    @property
    def next_index(self) -> int:
        """Index of the next segment to be started."""
        return self._next

    def take(self) -> tuple[int, ScriptSegment] | None:
        """Claim the next segment, or None when the script is exhausted."""
        if self._next >= len(self.script.segments):
            return None
        index = self._next
        self._next += 1
        return index, self.script.segments[index]

    def peek(self) -> ScriptSegment | None:
        """The next segment without claiming it."""
        if self._next >= len(self.script.segments):
            return None
        return self.script.segments[self._next]


@dataclass(frozen=True)
class HeardWord:
    """A word whose audio has fully arrived on the connection.

    Parameters:
        word: The script word.
        segment_index: Index of its segment in the script.
        start_secs: Start in the connection's audio stream.
        end_secs: End in the connection's audio stream.
    """

    word: ScriptWord
    segment_index: int
    start_secs: float
    end_secs: float


@dataclass
class _ActiveSegment:
    index: int
    segment: ScriptSegment
    anchor_secs: float
    released: int = 0

    @property
    def end_secs(self) -> float:
        return self.anchor_secs + self.segment.duration_secs


@dataclass
class TrackerUpdate:
    """What one block of audio changed.

    Parameters:
        onsets: Stream positions where a segment started (speech resumed).
        words: Words whose audio completed in this block, in order.
    """

    onsets: list[float] = field(default_factory=list)
    words: list[HeardWord] = field(default_factory=list)


@dataclass(frozen=True)
class LostSegment:
    """A segment a dropped connection was hearing, and the audio it began with.

    Parameters:
        index: Index of the segment in the script.
        segment: The segment.
        onset_audio: The first ``REPLAY_MATCH_SECS`` of PCM16 audio received from its onset.
    """

    index: int
    segment: ScriptSegment
    onset_audio: bytes


class ScriptTracker:
    """Follows one connection's received audio and says which scripted words it now carries.

    A synchronous core: feed it every block of audio the connection receives, it returns the
    onsets and completed words. The protocol sessions decide what to send about them.
    """

    def __init__(
        self,
        cursor: ScriptCursor | Callable[[], ScriptCursor | None] | None,
        sample_rate: int,
    ):
        """Initialize the tracker at stream position 0.

        Args:
            cursor: The shared script position; or a function returning it, asked again at every
                onset, so a script registered after the connection opened is still played; or
                None for a connection without a script (it then transcribes nothing).
            sample_rate: Samples per second of the received PCM16 mono audio.
        """
        self._cursor_source = cursor
        self._sample_rate = sample_rate
        self._samples = 0
        # The connection starts in silence: a test that streams speech right after connecting
        # is a speech onset. A connection that replaces a dropped one mid-speech is not; see
        # `ScriptTracker.require_silence`.
        self._quiet_samples = int(ONSET_MIN_SILENCE_SECS * sample_rate)
        self._active: _ActiveSegment | None = None
        self._last_word_end: float | None = None
        self._closed = False
        # The audio each segment begun on this connection started with (up to REPLAY_MATCH_SECS).
        self._onset_audio: dict[int, bytearray] = {}
        self._replays: list[LostSegment] = []

    @property
    def position_secs(self) -> float:
        """Seconds of audio received so far."""
        return self._samples / self._sample_rate

    @property
    def last_word_end_secs(self) -> float | None:
        """Stream position where the last heard word ended, None before the first word."""
        return self._last_word_end

    @property
    def speaking(self) -> bool:
        """Whether a segment's audio is still arriving (no pause can be measured yet)."""
        return self._active is not None

    def silence_secs(self) -> float | None:
        """Received audio since the last heard word, while no segment is being spoken.

        Returns:
            Seconds of silence, or None when a segment is in progress or nothing was heard.
        """
        if self._active is not None or self._last_word_end is None:
            return None
        return max(0.0, self.position_secs - self._last_word_end)

    def require_silence(self) -> None:
        """Do not take the next onset until quiet audio has been seen on this connection."""
        self._quiet_samples = 0

    def lost_segment(self, index: int | None = None) -> LostSegment | None:
        """A segment begun on this connection, with its onset audio (to recognize it again).

        Args:
            index: The segment's index in the script; None for the one being spoken now.
        """
        if index is None:
            if self._active is None:
                return None
            index = self._active.index
        onset = self._onset_audio.get(index)
        script = self._cursor()
        if onset is None or script is None:
            return None
        return LostSegment(index, script.script.segments[index], bytes(onset))

    def expect_replay(self, lost: Sequence[LostSegment]) -> None:
        """Hear ``lost`` again if their audio arrives again (a client re-sending it after a drop).

        The stand-in recognizes no speech, but the same audio is the same words: a loud onset
        whose first samples are byte-identical to a lost segment's onset is that segment, not
        the next one. Any other audio plays the script as usual.
        """
        self._replays = [segment for segment in lost if segment.onset_audio]

    def close(self) -> bool:
        """Stop tracking (the connection is closing).

        Returns:
            True when a segment was being spoken (its remaining words are lost).
        """
        self._closed = True
        return self._active is not None

    def feed(self, pcm: bytes) -> TrackerUpdate:
        """Account for a block of received audio.

        Args:
            pcm: Signed 16-bit little-endian mono samples.

        Returns:
            The onsets and the words completed by this block.
        """
        update = TrackerUpdate()
        if self._closed:
            return update
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
        n = len(samples)
        if n == 0:
            return update
        base = self._samples
        offset = 0
        while offset < n:
            if self._active is None:
                offset = self._seek_onset(samples, base, offset, update)
                if self._active is None:
                    break
            # A segment is active: it ends somewhere in this block or later.
            active = self._active
            seg_end_sample = int(round(active.end_secs * self._sample_rate))
            block_end = base + n
            self._release(min(block_end, seg_end_sample) / self._sample_rate, update)
            if seg_end_sample <= block_end:
                self._release(active.end_secs, update)
                self._active = None
                self._quiet_samples = 0
                offset = max(offset, seg_end_sample - base)
            else:
                offset = n
        self._keep_onset_audio(samples, base)
        self._samples = base + n
        return update

    def _keep_onset_audio(self, samples: np.ndarray, base: int) -> None:
        active = self._active
        limit = int(REPLAY_MATCH_SECS * self._sample_rate) * 2
        if active is None:
            return
        kept = self._onset_audio.setdefault(active.index, bytearray())
        if len(kept) >= limit:
            return
        start = max(0, int(round(active.anchor_secs * self._sample_rate)) - base)
        kept += samples[start:].tobytes()[: limit - len(kept)]

    def _cursor(self) -> ScriptCursor | None:
        source = self._cursor_source
        if source is None or isinstance(source, ScriptCursor):
            return source
        return source()

    def _seek_onset(self, samples: np.ndarray, base: int, offset: int, update: TrackerUpdate):
        """Find where the next segment starts in ``samples[offset:]``; returns the new offset."""
        cursor = self._cursor()
        upcoming = cursor.peek() if cursor is not None else None
        if upcoming is None and not self._replays:
            return len(samples)
        if upcoming is not None and upcoming.start_secs is not None:
            assert cursor is not None
            start_sample = int(round(upcoming.start_secs * self._sample_rate))
            if start_sample >= base + len(samples):
                return len(samples)
            self._begin(cursor, max(start_sample, base + offset), update)
            return max(offset, start_sample - base)
        need = int(ONSET_MIN_SILENCE_SECS * self._sample_rate)
        rest = np.abs(samples[offset:].astype(np.int32)) >= ONSET_LEVEL
        i = 0
        while i < len(rest):
            loud = np.flatnonzero(rest[i:])
            if len(loud) == 0:
                self._quiet_samples += len(rest) - i
                return len(samples)
            j = i + int(loud[0])
            self._quiet_samples += j - i
            if self._replays and (replay := self._replayed(samples[offset + j :])):
                self._begin_replay(replay, base + offset + j, update)
                return offset + j
            if self._quiet_samples >= need and cursor is not None and upcoming is not None:
                self._begin(cursor, base + offset + j, update)
                return offset + j
            # Speech without enough silence before it (the tail of a dropped segment, or a
            # segment that outlasts its script): not an onset; skip the loud run.
            quiet = np.flatnonzero(~rest[j:])
            if len(quiet) == 0:
                return len(samples)
            i = j + int(quiet[0])
            self._quiet_samples = 0
        return len(samples)

    def _replayed(self, samples: np.ndarray) -> LostSegment | None:
        for lost in self._replays:
            expected = np.frombuffer(lost.onset_audio, dtype="<i2")
            k = min(len(expected), len(samples))
            if k >= 32 and np.array_equal(samples[:k], expected[:k]):
                return lost
        return None

    def _begin_replay(self, replay: LostSegment, sample: int, update: TrackerUpdate) -> None:
        self._replays.remove(replay)
        anchor = sample / self._sample_rate
        self._active = _ActiveSegment(
            index=replay.index, segment=replay.segment, anchor_secs=anchor
        )
        update.onsets.append(anchor)

    def _begin(self, cursor: ScriptCursor, sample: int, update: TrackerUpdate) -> None:
        taken = cursor.take()
        if taken is None:
            return
        index, segment = taken
        anchor = sample / self._sample_rate
        self._active = _ActiveSegment(index=index, segment=segment, anchor_secs=anchor)
        update.onsets.append(anchor)

    def _release(self, position_secs: float, update: TrackerUpdate) -> None:
        active = self._active
        if active is None:
            return
        words = active.segment.words
        while active.released < len(words):
            word = words[active.released]
            end = active.anchor_secs + word.end_secs
            if end > position_secs + 1e-9:
                break
            if word.start_secs is not None:
                start = active.anchor_secs + word.start_secs
            elif active.released > 0:
                start = active.anchor_secs + words[active.released - 1].end_secs
            else:
                start = active.anchor_secs
            update.words.append(HeardWord(word, active.index, start, end))
            self._last_word_end = end
            active.released += 1


def words_text(words: Sequence[HeardWord], *, punctuate: bool = True) -> str:
    """Join heard words into a transcript.

    Args:
        words: The words.
        punctuate: Keep punctuation and case (Deepgram ``punctuate=true``), else bare words.

    Returns:
        The transcript.
    """
    return " ".join(w.word.text if punctuate else w.word.bare for w in words)
