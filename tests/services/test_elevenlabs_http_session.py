"""ElevenLabsHttpSession against the stand-in, with Pipecat's ElevenLabsHttpTTSService."""

import asyncio
import socket

import pytest
from pipecat.frames.frames import TTSAudioRawFrame, TTSSpeakFrame
from pipecat.services.elevenlabs.tts import ElevenLabsHttpTTSService
from pipecat.tests.utils import run_test

from pipecat_speculative.services.elevenlabs_http_session import ElevenLabsHttpSession
from pipecat_speculative.services.warmup_report import WarmupKind
from pipecat_speculative.standins import ElevenLabsStandin
from pipecat_speculative.standins.profile import LatencyProfile


def profile() -> LatencyProfile:
    return LatencyProfile.instant(new_connection_penalty_secs={"elevenlabs": 0.05})


def synthesis_requests(server):
    return [r for r in server.requests if r.path.startswith("/v1/text-to-speech/")]


async def speak(http: ElevenLabsHttpSession, server, text: str):
    tts = ElevenLabsHttpTTSService(
        api_key="test",
        aiohttp_session=http.session,
        base_url=server.base_url,
        sample_rate=16000,
        settings=ElevenLabsHttpTTSService.Settings(voice="standin"),
    )
    down, _ = await run_test(tts, frames_to_send=[TTSSpeakFrame(text)])
    return down


async def test_after_warmup_the_first_synthesis_reuses_a_warmed_connection(log_messages):
    async with ElevenLabsStandin(profile=profile(), speech="synthetic") as server:
        seen = []
        async with ElevenLabsHttpSession(
            api_key="test", base_url=server.base_url, warmup_listener=lambda *a: seen.append(a)
        ) as http:
            report = await http.warmup()
            assert server.stats.connections_accepted == 2
            down = await speak(http, server, "Good morning to you.")

    assert report.ok and report.kind is WarmupKind.INITIAL and report.connections == 2
    assert any(isinstance(f, TTSAudioRawFrame) for f in down)
    [request] = synthesis_requests(server)
    assert not request.new_connection and request.penalty_secs == 0
    assert server.stats.connections_accepted == 2
    assert seen == [("elevenlabs-http", report.secs, True)]
    assert any("ElevenLabs warmup complete in" in m for m in log_messages)


async def test_an_idle_session_is_rewarmed_before_the_next_synthesis():
    async with ElevenLabsStandin(
        profile=profile(), speech="synthetic", keepalive_timeout_secs=0.2
    ) as server:
        async with ElevenLabsHttpSession(
            api_key="test", base_url=server.base_url, rewarm_after_idle_secs=0.3
        ) as http:
            await http.warmup()
            assert await http.ensure_warm() is None  # just warmed: nothing sent
            await asyncio.sleep(0.5)  # the server closed both idle connections
            report = await http.ensure_warm()
            await speak(http, server, "Hello again.")

    assert report.ok and report.kind is WarmupKind.REWARM
    assert server.stats.connections_accepted == 4
    [request] = synthesis_requests(server)
    assert not request.new_connection


async def test_a_warmup_against_a_dead_endpoint_fails_soft(log_messages):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with ElevenLabsHttpSession(
        api_key="test", base_url=f"http://127.0.0.1:{port}", warmup_timeout_secs=1.0
    ) as http:
        report = await http.warmup()
    assert not report.ok
    assert any(m.startswith("WARNING") and "HTTP warmup failed" in m for m in log_messages)


async def test_warm_false_sends_nothing():
    async with ElevenLabsStandin(profile=profile(), speech="synthetic") as server:
        async with ElevenLabsHttpSession(
            api_key="test", base_url=server.base_url, warm=False
        ) as http:
            assert await http.warmup() is None and await http.ensure_warm() is None
    assert server.stats.requests_total == 0


def test_parameters_are_validated():
    with pytest.raises(ValueError):
        ElevenLabsHttpSession(api_key="k", connections=0)
    with pytest.raises(ValueError):
        ElevenLabsHttpSession(api_key="k", warmup_timeout_secs=0)
