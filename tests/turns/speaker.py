"""A TTS whose audio says which characters it speaks, and an output transport that listens.

``CharTTS`` turns each character of a sentence into one output chunk whose samples all hold the
character's code, after a start mark (``\\x01``) per sentence; ``Speaker`` (a paced output
transport, so the bot speaks for as long as its audio lasts, on the loop's clock) decodes each
chunk it writes and notes each interruption (``|``). ``Speaker.heard`` is then exactly what a
listener heard, in order, and where the bot was cut off.
"""

from __future__ import annotations

import asyncio

import numpy as np
from pipecat.frames.frames import Frame, InterruptionFrame, OutputAudioRawFrame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_transport import TransportParams

from pipecat_speculative.services.speculative_tts_mixin import SpeculativeTTSMixin
from pipecat_speculative.transports import PacedOutputTransport

SAMPLE_RATE = 16000
CHUNK_10MS = 4  # TransportParams.audio_out_10ms_chunks default
CHUNK_BYTES = SAMPLE_RATE * 2 // 100 * CHUNK_10MS
START = "\x01"
CUT = "|"


class CharTTS(TTSService):
    """Speaks a sentence as one chunk per character (see the module docstring)."""

    def __init__(self, *, first_audio_secs: float = 0.1, **kwargs):
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            sample_rate=SAMPLE_RATE,
            settings=TTSSettings(model="chars", voice="chars", language=None),
            **kwargs,
        )
        self.first_audio_secs = first_audio_secs
        self.sentences: list[str] = []

    async def run_tts(self, text: str, context_id: str):
        self.sentences.append(text)
        await asyncio.sleep(self.first_audio_secs)
        audio = b"".join(ord(c).to_bytes(2, "little") * (CHUNK_BYTES // 2) for c in START + text)
        yield TTSAudioRawFrame(
            audio=audio, sample_rate=SAMPLE_RATE, num_channels=1, context_id=context_id
        )


class SpeculativeCharTTS(SpeculativeTTSMixin, CharTTS):
    """The same TTS, closing a withdrawn speculation's synthesis at once."""


class Speaker(PacedOutputTransport):
    """Plays chunks at their real duration and writes down what they said."""

    def __init__(self):
        super().__init__(TransportParams(audio_out_sample_rate=SAMPLE_RATE))
        self.played: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        if isinstance(frame, InterruptionFrame):
            self.played.append(CUT)
        await super().process_frame(frame, direction)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        samples = np.frombuffer(frame.audio, dtype=np.int16)
        assert len(samples) and (samples == samples[0]).all(), "a chunk mixes two characters"
        self.played.append(chr(int(samples[0])))
        return await super().write_audio_frame(frame)

    @property
    def heard(self) -> str:
        return "".join(self.played)


def spoken_answers(heard: str) -> list[tuple[str, bool]]:
    """``(text, cut off)`` for each answer in what the speaker heard, in order.

    Asserts that an interrupted answer stops: after a cut, nothing more of it is played (only a
    new answer, which starts with its mark). Silence (code 0) is left out.
    """
    answers: list[list] = []
    open_answer = False
    for c in heard.replace("\x00", ""):
        if c == START:
            answers.append(["", False])
            open_answer = True
        elif c == CUT:
            if open_answer:
                answers[-1][1] = True
            open_answer = False
        else:
            assert open_answer, ("audio of an interrupted answer played on", heard)
            answers[-1][0] += c
    return [(text, cut) for text, cut in answers]
