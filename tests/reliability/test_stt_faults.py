"""STT faults through the warm Deepgram service on the stand-in: the user's words are not lost.

Covered elsewhere: a malformed ``Results`` message (test_malformed_deepgram.py).
"""

from __future__ import annotations

import pytest
from pipecat.frames.frames import InputAudioRawFrame, TranscriptionFrame
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.services.audio_replay_buffer import AudioReplayBuffer
from pipecat_speculative.services.warm_deepgram_stt_service import WarmDeepgramSTTService
from pipecat_speculative.standins import DeepgramStandin
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.stt_script import ScriptSegment, SttScript
from tests.standins.deepgram_audio import SAMPLE_RATE, audio_frames, silence, speech

HELLO = ScriptSegment.from_text("Hello there my friend", 1.0)
HOW = ScriptSegment.from_text("how are you?", 0.6)


def finals(frames) -> list[str]:
    return [f.text for f in frames if isinstance(f, TranscriptionFrame)]


async def test_a_drop_mid_utterance_loses_no_words(all_logs):
    # The connection is cut right after the first interim of "Hello there my friend"; the user
    # goes on ("how are you?") while Pipecat backs off (>= 4 s) before reconnecting.
    async with DeepgramStandin(profile=LatencyProfile.instant(stt_interim_interval_secs=0.1)) as dg:
        dg.set_script(SttScript.of([HELLO, HOW]))
        fault = dg.faults.disconnect(after=1, path="/v1/listen")
        stt = WarmDeepgramSTTService(api_key="test", base_url=dg.base_url)
        frames: list = [
            *audio_frames(silence(0.2) + speech(1.0) + silence(0.5)),
            *audio_frames(speech(0.6, pitch=0.13) + silence(0.5)),
            SleepFrame(4.6),  # the reconnect backoff; audio keeps flowing from a transport:
            *audio_frames(silence(0.3)),
            SleepFrame(0.4),
        ]
        down, _ = await run_test(stt, frames_to_send=frames)
    assert fault.fired == 1 and dg.stream_count == 2
    assert finals(down) == ["Hello there my friend", "how are you?"]  # both, in order, once
    assert stt.audio_resent_secs > 0
    assert any("sending" in m and "again on the new connection" in m for m in all_logs)


def test_the_replay_buffer_keeps_what_no_final_covers_and_is_bounded():
    bps = 100  # 50 samples a second, for round numbers
    buffer = AudioReplayBuffer(max_secs=2.0, bytes_per_sec=bps)
    for i in range(3):
        buffer.append(bytes([i]) * 50)  # three half-seconds
    buffer.acknowledge(0.7)  # a final up to 0.7 s
    assert buffer.secs == pytest.approx(0.8) and buffer.dropped_secs == 0
    assert b"".join(buffer.restart()) == bytes([1]) * 30 + bytes([2]) * 50
    # A new stream starts with the re-sent audio at 0: a final up to 0.3 s covers the 1s.
    buffer.acknowledge(0.3)
    assert b"".join(buffer.restart()) == bytes([2]) * 50
    for _ in range(5):
        buffer.append(b"\x07" * 50)
    assert buffer.secs == pytest.approx(2.0)  # bounded
    assert buffer.dropped_secs == pytest.approx(1.0)  # the oldest went first
    assert b"".join(buffer.restart()) == b"\x07" * 200


def test_the_replay_bound_is_validated():
    with pytest.raises(ValueError, match="resend_audio_secs"):
        WarmDeepgramSTTService(api_key="test", resend_audio_secs=0)


async def test_without_the_replay_the_service_is_stock_about_audio():
    async with DeepgramStandin(profile=LatencyProfile.instant()) as dg:
        stt = WarmDeepgramSTTService(api_key="test", base_url=dg.base_url, resend_audio_secs=None)
        frame = InputAudioRawFrame(audio=silence(0.1), sample_rate=SAMPLE_RATE, num_channels=1)
        await run_test(stt, frames_to_send=[frame, SleepFrame(0.1)])
    assert stt.audio_resent_secs == 0
