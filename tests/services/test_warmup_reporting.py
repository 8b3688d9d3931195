"""Warmups reach the turn timing observer through ``warmup_listener``, with no import between them."""

from pipecat.frames.frames import LLMContextFrame, TTSAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from pipecat_speculative.metrics.turn_timing_observer import TurnTimingObserver
from pipecat_speculative.services import SpeculativeOpenAILLMService, WarmElevenLabsTTSService
from pipecat_speculative.standins import ElevenLabsStandin, OpenAIStandin
from pipecat_speculative.standins.profile import LatencyProfile


async def test_the_observer_records_every_services_warmup():
    profile = LatencyProfile.instant(
        new_connection_penalty_secs={"openai": 0.05, "elevenlabs": 0.05}
    )
    observer = TurnTimingObserver(log=False)
    async with (
        OpenAIStandin(profile=profile) as openai,
        ElevenLabsStandin(profile=profile, speech="synthetic") as elevenlabs,
    ):
        llm = SpeculativeOpenAILLMService(
            api_key="test",
            base_url=f"{openai.base_url}/v1",
            settings=SpeculativeOpenAILLMService.Settings(model="gpt-4o-mini"),
            warmup_listener=observer.record_warmup,
        )
        tts = WarmElevenLabsTTSService(
            api_key="test",
            url=elevenlabs.ws_url,
            sample_rate=16000,
            settings=WarmElevenLabsTTSService.Settings(voice="standin"),
            warmup_listener=observer.record_warmup,
        )
        await llm.warmup()
        context = LLMContext(messages=[{"role": "user", "content": "Hello there"}])
        down, _ = await run_test(
            Pipeline([llm, tts]), frames_to_send=[LLMContextFrame(context)], observers=[observer]
        )

    assert any(isinstance(f, TTSAudioRawFrame) for f in down)
    warmups = observer.summary().warmups
    assert sorted(w.service for w in warmups) == ["elevenlabs", "openai"]
    assert all(w.ok and w.secs >= 0 for w in warmups)
