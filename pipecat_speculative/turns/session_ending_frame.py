"""The frames that tell the speculative strategy the session ends, before the aggregator does.

Pipecat 1.14's user aggregator handles ``EndFrame`` and ``CancelFrame`` by flushing the open
user turn with an inference *before* its turn strategies see the frame. With a speculation
held, that flush starts a second, non-speculative inference on the same words (partly heard
before the pipeline stops) and the speculation is never resolved. The strategy needs to act
first: :class:`~pipecat_speculative.turns.transcription_guard.TranscriptionGuard`, which sits
between the STT and the user aggregator, pushes one of these right ahead of the end frame.

Two classes because the two end frames travel differently: ``EndFrame`` is queued behind the
transcripts before it (so its herald must be too, or it would overtake words still queued in the
aggregator), ``CancelFrame`` is a system frame that overtakes everything (so its herald must be
one as well, or the cancel would arrive first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipecat.frames.frames import ControlFrame, SystemFrame

__all__ = ["SessionCancellingFrame", "SessionEndingFrame"]


@dataclass
class SessionEndingFrame(ControlFrame):
    """Pushed just before an ``EndFrame``; ordered with the frames before it.

    Not interruptible: an interruption must not drop it from a queue, as it never drops the
    ``EndFrame`` it announces.
    """

    interruptible: bool = field(default=False, init=False)


@dataclass
class SessionCancellingFrame(SystemFrame):
    """Pushed just before a ``CancelFrame``."""
