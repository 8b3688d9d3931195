"""One malformed ElevenLabs message does not cut the sentence being spoken."""

from pipecat.frames.frames import TTSAudioRawFrame, TTSSpeakFrame, TTSStoppedFrame
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.services.warm_elevenlabs_tts_service import WarmElevenLabsTTSService
from pipecat_speculative.standins import ElevenLabsStandin
from pipecat_speculative.standins.profile import LatencyProfile

SENTENCE = "This sentence is long enough to be sent as several audio messages by the server."


def make_tts(url: str, **kwargs) -> WarmElevenLabsTTSService:
    return WarmElevenLabsTTSService(
        api_key="test",
        url=url,
        sample_rate=16000,
        settings=WarmElevenLabsTTSService.Settings(voice="standin"),
        **kwargs,
    )


async def speak(server: ElevenLabsStandin, tts: WarmElevenLabsTTSService):
    down, _ = await run_test(tts, frames_to_send=[TTSSpeakFrame(SENTENCE), SleepFrame(1.0)])
    record = next(c for c in server.tts_stats.contexts if SENTENCE in c.text)
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    return down, record, audio


async def test_an_invalid_json_message_is_skipped_and_the_whole_sentence_is_heard(all_logs):
    async with ElevenLabsStandin(profile=LatencyProfile.instant(), speech="synthetic") as server:
        fault = server.faults.malformed("invalid_json", after=2)
        tts = make_tts(server.ws_url)
        down, record, audio = await speak(server, tts)
    assert fault.fired == 1 and record.audio_messages > 3
    assert len(audio) == record.audio_messages  # every audio message of the sentence arrived
    assert any(isinstance(f, TTSStoppedFrame) for f in down)
    assert server.stats.websockets_opened == 1  # the socket was kept
    assert tts.malformed_messages_skipped == 1
    assert any(m.startswith("WARNING") and "not JSON" in m for m in all_logs)
