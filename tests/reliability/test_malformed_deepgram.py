"""One malformed Deepgram message does not drop the socket or lose the user's words."""

from pipecat.frames.frames import TranscriptionFrame
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.services.warm_deepgram_stt_service import WarmDeepgramSTTService
from pipecat_speculative.standins import DeepgramStandin
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.stt_script import ScriptSegment, SttScript
from tests.standins.deepgram_audio import audio_frames, silence, speech

HELLO = ScriptSegment.from_text("Hello there my friend", 1.0)
HOW = ScriptSegment.from_text("how are you?", 0.6)


def profile() -> LatencyProfile:
    return LatencyProfile.instant(stt_interim_interval_secs=0.1)


def finals(frames) -> list[str]:
    return [f.text for f in frames if isinstance(f, TranscriptionFrame)]


async def test_an_invalid_json_results_message_is_skipped_and_both_finals_arrive(all_logs):
    async with DeepgramStandin(profile=profile()) as deepgram:
        deepgram.set_script(SttScript.of([HELLO, HOW]))
        fault = deepgram.faults.malformed("invalid_json", after=1, path="/v1/listen")
        stt = WarmDeepgramSTTService(api_key="test", base_url=deepgram.base_url)
        frames = [
            *audio_frames(silence(0.2) + speech(1.0) + silence(0.5)),
            *audio_frames(speech(0.6) + silence(0.5)),
            SleepFrame(0.5),
        ]
        down, _ = await run_test(stt, frames_to_send=frames)

    assert fault.fired == 1
    assert finals(down) == ["Hello there my friend", "how are you?"]
    assert deepgram.stream_count == 1  # the socket was kept, no reconnection
    assert stt.malformed_messages_skipped == 1
    assert any(m.startswith("WARNING") and "not JSON" in m for m in all_logs)


async def test_the_guard_can_be_turned_off():
    async with DeepgramStandin(profile=profile()) as deepgram:
        stt = WarmDeepgramSTTService(
            api_key="test", base_url=deepgram.base_url, skip_malformed_messages=False
        )
        await run_test(stt, frames_to_send=[SleepFrame(0.1)])
    assert stt.malformed_messages_skipped == 0
