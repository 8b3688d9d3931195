"""Audio helpers for the Deepgram stand-in tests: loud tones for speech, zeros for silence."""

import numpy as np
from pipecat.frames.frames import InputAudioRawFrame

SAMPLE_RATE = 16000
CHUNK_BYTES = 640  # 20 ms


def speech(secs: float, pitch: float = 0.1) -> bytes:
    """A loud tone standing for speech (the stand-in only needs an onset, not words).

    Give different utterances different pitches where a drop is involved: the stand-in hears
    the same audio sent again after a drop as the same words.
    """
    t = np.arange(int(SAMPLE_RATE * secs))
    return (np.sin(t * pitch + 1.0) * 8000).astype("<i2").tobytes()


def silence(secs: float) -> bytes:
    return b"\x00\x00" * int(SAMPLE_RATE * secs)


def audio_frames(pcm: bytes) -> list[InputAudioRawFrame]:
    return [
        InputAudioRawFrame(audio=pcm[i : i + CHUNK_BYTES], sample_rate=SAMPLE_RATE, num_channels=1)
        for i in range(0, len(pcm), CHUNK_BYTES)
    ]
