"""Script a conversation as a timeline and turn it into the frames an STT + VAD would produce.

A turn is a list of speech segments; each says how long the speech lasts, the pause after it, and
when its final transcript arrives relative to the VAD stop (negative: before it; positive: after,
the common case where the VAD system frame overtakes the queued final). Optional blips are short
VAD start/stop pairs with no words (a cough). The result is a ``frames_to_send`` list for
``run_test``, with ``SleepFrame``s for the gaps.
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


@dataclass
class Segment:
    text: str
    speech_secs: float = 0.1
    pause_after_secs: float = 0.5
    final_after_stop_secs: float = 0.01
    interim: bool = True
    blip_at_secs: float | None = None  # a wordless VAD start/stop this long into the pause


@dataclass
class Timeline:
    segments: list[Segment] = field(default_factory=list)

    def say(self, text: str, **kw) -> Timeline:
        self.segments.append(Segment(text, **kw))
        return self

    def events(self) -> list[tuple[float, int, Frame]]:
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
            add(max(t, stop + seg.final_after_stop_secs), _final(seg.text))
            if seg.blip_at_secs is not None:
                add(stop + seg.blip_at_secs, VADUserStartedSpeakingFrame(start_secs=0.2))
                add(
                    stop + seg.blip_at_secs + 0.03, VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS)
                )
            t = stop + seg.pause_after_secs
        self._end = t
        return sorted(events, key=lambda e: (e[0], e[1]))

    def frames(self, *, tail_secs: float = 0.0) -> list[Frame]:
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


def _final(text: str) -> TranscriptionFrame:
    frame = TranscriptionFrame(text, "u", "")
    frame.finalized = True
    return frame
