"""A refused API key is a failed warmup and an error at start, never ``ok=True``.

The stand-ins accept only ``GOOD_KEY`` here; the services present ``BAD_KEY``. Each warm
service must report ``ok=False`` with the HTTP status, log it at error level naming the service
and never the key, and the pipeline must still start (the failure then shows at the first turn
as Pipecat's own error).
"""

from pipecat.frames.frames import ErrorFrame, LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.services.elevenlabs_http_session import ElevenLabsHttpSession
from pipecat_speculative.services.speculative_openai_llm_service import SpeculativeOpenAILLMService
from pipecat_speculative.services.warm_deepgram_stt_service import WarmDeepgramSTTService
from pipecat_speculative.services.warm_elevenlabs_tts_service import WarmElevenLabsTTSService
from pipecat_speculative.standins import DeepgramStandin, ElevenLabsStandin, OpenAIStandin
from pipecat_speculative.standins.profile import LatencyProfile

GOOD_KEY = "the-right-key"
BAD_KEY = "sk-WRONG-KEY-0123456789"


def errors_naming(logs: list[str], service: str, status: int) -> list[str]:
    return [m for m in logs if m.startswith("ERROR") and service in m and f"HTTP {status}" in m]


def assert_key_never_logged(logs: list[str]) -> None:
    assert not [m for m in logs if BAD_KEY in m]


async def test_openai_refused_key_is_a_failed_warmup_and_the_first_turn_errors(all_logs):
    async with OpenAIStandin(profile=LatencyProfile.instant(), api_key=GOOD_KEY) as server:
        llm = SpeculativeOpenAILLMService(
            api_key=BAD_KEY,
            base_url=f"{server.base_url}/v1",
            settings=SpeculativeOpenAILLMService.Settings(model="gpt-4o-mini"),
            health_check_secs=0.05,
        )
        context = LLMContext(messages=[{"role": "user", "content": "Hello"}])
        _, up = await run_test(
            llm, frames_to_send=[SleepFrame(0.3), LLMContextFrame(context), SleepFrame(0.2)]
        )
    report = llm.warmup_reports[0]
    assert not report.ok and report.error == "API key refused (HTTP 401)"
    assert errors_naming(all_logs, "OpenAI", 401)
    assert any(isinstance(f, ErrorFrame) for f in up)  # the turn fails with Pipecat's error
    assert_key_never_logged(all_logs)


async def test_openai_forbidden_is_a_failed_warmup_too(all_logs):
    async with OpenAIStandin(profile=LatencyProfile.instant()) as server:
        server.faults.http_error(403, path="/v1/models", times=None)
        llm = SpeculativeOpenAILLMService(
            api_key=BAD_KEY,
            base_url=f"{server.base_url}/v1",
            settings=SpeculativeOpenAILLMService.Settings(model="gpt-4o-mini"),
        )
        report = await llm.warmup()
        await run_test(llm, frames_to_send=[SleepFrame(0.05)])
    assert not report.ok and "HTTP 403" in report.error
    assert errors_naming(all_logs, "OpenAI", 403)


async def test_elevenlabs_refused_key_is_a_failed_warmup_and_the_pipeline_still_runs(all_logs):
    async with ElevenLabsStandin(
        profile=LatencyProfile.instant(), speech="synthetic", api_key=GOOD_KEY
    ) as server:
        seen = []
        tts = WarmElevenLabsTTSService(
            api_key=BAD_KEY,
            url=server.ws_url,
            sample_rate=16000,
            settings=WarmElevenLabsTTSService.Settings(voice="standin"),
            warmup_listener=lambda *a: seen.append(a),
        )
        await run_test(tts, frames_to_send=[SleepFrame(0.1)])
    report = tts.warmup_reports[0]
    assert not report.ok and report.error == "handshake refused (HTTP 401)"
    assert seen[0] == ("elevenlabs", report.secs, False)
    assert errors_naming(all_logs, "ElevenLabs", 401)
    assert_key_never_logged(all_logs)


async def test_elevenlabs_http_session_refused_key_is_a_failed_warmup(all_logs):
    async with ElevenLabsStandin(profile=LatencyProfile.instant(), api_key=GOOD_KEY) as server:
        async with ElevenLabsHttpSession(api_key=BAD_KEY, base_url=server.base_url) as http:
            report = await http.warmup()
    assert not report.ok and report.error == "API key refused (HTTP 401)"
    assert errors_naming(all_logs, "ElevenLabs", 401)
    assert_key_never_logged(all_logs)


async def test_deepgram_refused_key_is_a_failed_warmup_and_the_pipeline_still_runs(all_logs):
    async with DeepgramStandin(profile=LatencyProfile.instant(), api_key=GOOD_KEY) as deepgram:
        stt = WarmDeepgramSTTService(api_key=BAD_KEY, base_url=deepgram.base_url)
        _, up = await run_test(stt, frames_to_send=[SleepFrame(0.1)], start_timeout=5.0)
    report = stt.warmup_reports[0]
    assert not report.ok and report.error == "handshake refused (HTTP 401)"
    assert errors_naming(all_logs, "Deepgram", 401)
    assert_key_never_logged(all_logs)
