"""Script a conversation as a timeline and turn it into the frames an STT + VAD would produce.

A turn is a list of speech segments; each says how long the speech lasts, the pause after it, and
when its final transcript arrives relative to the VAD stop (negative: before it; positive: after,
the common case where the VAD system frame overtakes the queued final). Optional blips are short
VAD start/stop pairs with no words (a cough). The result is a ``frames_to_send`` list for
``run_test``, with ``SleepFrame``s for the gaps.

Why a timeline and not a list of frames: what a turn strategy does depends on *when* frames arrive
(a pause shorter than the debounce, a final transcript overtaken by the VAD stop). Writing the
``SleepFrame``s by hand makes those timings unreadable; a timeline states them in words.

Example::

    from pipecat.tests.utils import run_test
    from pipecat_speculative.testing import Timeline

    frames = Timeline().say("I want", pause_after_secs=0.25).say("a table for two").frames()
    down, up = await run_test(Pipeline([user_aggregator, llm]), frames_to_send=frames)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipecat.frames.frames import (
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame

STOP_SECS = 0.2


__all__ = ["STOP_SECS", "Segment", "Timeline", "final_transcription"]


@dataclass
class Segment:
    """One stretch of user speech and the pause after it.

    Parameters:
        text: What the user says (the final transcript).
        speech_secs: How long the speech lasts (VAD start to VAD stop).
        pause_after_secs: Silence after the VAD stop before the next segment.
        final_after_stop_secs: When the final transcript arrives relative to the VAD stop
            (negative: before it).
        interim: Send an interim transcript (the first word) halfway through the speech.
        blip_at_secs: A wordless VAD start/stop (a cough) this long into the pause; None for none.
    """

    text: str
    speech_secs: float = 0.1
    pause_after_secs: float = 0.5
    final_after_stop_secs: float = 0.01
    interim: bool = True
    blip_at_secs: float | None = None


@dataclass
class Timeline:
    """A scripted user: segments in order, rendered to frames by :meth:`frames`."""

    segments: list[Segment] = field(default_factory=list)

    def say(self, text: str, **kw: float | bool | None) -> Timeline:
        """Append a segment (keyword arguments as in :class:`Segment`); returns self to chain."""
        self.segments.append(Segment(text, **kw))
        return self

    def events(self) -> list[tuple[float, int, Frame]]:
        """``(seconds from start, order, frame)`` for every frame, sorted."""
        events: list[tuple[float, int, Frame]] = []
        t = 0.0
        order = 0

        def add(at: float, frame: Frame):
            nonlocal order
            events.append((at, order, frame))
            order += 1

        for seg in self.segments:
            add(t, VADUserStartedSpeakingFrame(start_secs=0.2))
            if seg.interim:
                add(
                    t + seg.speech_secs / 2, InterimTranscriptionFrame(seg.text.split()[0], "u", "")
                )
            stop = t + seg.speech_secs
            add(stop, VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS))
            add(max(t, stop + seg.final_after_stop_secs), final_transcription(seg.text))
            if seg.blip_at_secs is not None:
                add(stop + seg.blip_at_secs, VADUserStartedSpeakingFrame(start_secs=0.2))
                add(
                    stop + seg.blip_at_secs + 0.03, VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS)
                )
            t = stop + seg.pause_after_secs
        self._end = t
        return sorted(events, key=lambda e: (e[0], e[1]))

    def frames(self, *, tail_secs: float = 0.0) -> list[Frame]:
        """The frames with ``SleepFrame``s between them, for ``run_test(frames_to_send=...)``.

        Args:
            tail_secs: Extra silence after the last pause (time for a commit to happen).
        """
        out: list[Frame] = []
        now = 0.0
        for at, _, frame in self.events():
            if at > now:
                out.append(SleepFrame(sleep=at - now))
                now = at
            out.append(frame)
        rest = self._end - now + tail_secs
        if rest > 0:
            out.append(SleepFrame(sleep=rest))
        return out


def final_transcription(text: str, user_id: str = "u") -> TranscriptionFrame:
    """A finalized ``TranscriptionFrame``, as an STT sends when it is sure of the words."""
    frame = TranscriptionFrame(text, user_id, "")
    frame.finalized = True
    return frame
