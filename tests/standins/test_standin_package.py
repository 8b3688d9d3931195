"""The stand-ins package: public names, light plugin import, lifecycle, fixtures."""

import asyncio
import importlib
import json
import subprocess
import sys
import threading
import time

import aiohttp
import pytest
import websockets

import pipecat_speculative.standins as standins
from pipecat_speculative.standins.elevenlabs_server import ElevenLabsStandin
from pipecat_speculative.standins.openai_server import OpenAIStandin
from pipecat_speculative.standins.profile import LatencyProfile

MODULES = [
    "base",
    "deterministic_llm",
    "elevenlabs_server",
    "faults",
    "openai_server",
    "pinecone_server",
    "profile",
    "pytest_plugin",
    "speech_engine",
]


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_exists(name):
    module = importlib.import_module(f"pipecat_speculative.standins.{name}")
    for public in module.__all__:
        assert hasattr(module, public), f"{name}.{public}"


def test_the_package_re_exports_the_servers():
    for name in standins.__all__:
        assert getattr(standins, name).__name__ == name
    assert standins.OpenAIStandin is OpenAIStandin


def test_loading_the_pytest_plugin_stays_light():
    code = (
        "import sys, pipecat_speculative.standins.pytest_plugin as p, pipecat_speculative.standins;"
        "print([m for m in ('aiohttp', 'numpy', 'pipecat', 'openai', 'pinecone', 'piper')"
        " if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_stand_ins_bind_to_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        OpenAIStandin(host="0.0.0.0")


async def test_a_stand_in_reports_its_port_and_stops_idempotently():
    server = OpenAIStandin(profile=LatencyProfile.instant())
    with pytest.raises(RuntimeError):
        _ = server.port
    await server.start()
    assert server.base_url == f"http://127.0.0.1:{server.port}" and server.port > 0
    assert server.ws_url.startswith("ws://127.0.0.1:")
    await server.stop()
    await server.stop()
    assert not server.started


async def test_stopping_closes_open_sockets_even_mid_context():
    # Slow audio pacing keeps the context busy when the server stops.
    profile = LatencyProfile.instant(tts_speed_factor=0.5)
    server = await ElevenLabsStandin(profile=profile, speech="synthetic").start()
    url = f"{server.ws_url}/v1/text-to-speech/v/multi-stream-input?output_format=pcm_16000&auto_mode=true"
    async with websockets.connect(url, additional_headers={"xi-api-key": "k"}) as ws:
        await ws.send(
            json.dumps({"text": "A long sentence that takes a while.", "context_id": "c"})
        )
        await ws.recv()
        await server.stop()
        async with asyncio.timeout(5):
            await ws.wait_closed()
        assert ws.close_code == 1001
    assert server.stats.open_websockets == 0


class _SlowEngine:
    name = "slow test engine (NOT speech)"
    real_speech = False

    def __init__(self):
        self.started = threading.Event()
        self.finished = threading.Event()

    def synthesize(self, text: str, sample_rate: int) -> bytes:
        self.started.set()
        time.sleep(0.6)  # blocking, like a real engine on a busy machine
        self.finished.set()
        return b"\x10\x00" * sample_rate


async def test_synthesis_runs_off_the_event_loop():
    engine = _SlowEngine()
    async with ElevenLabsStandin(profile=LatencyProfile.instant(), speech=engine) as server:
        url = f"{server.ws_url}/v1/text-to-speech/v/multi-stream-input?output_format=pcm_16000&auto_mode=true"
        async with websockets.connect(url, additional_headers={"xi-api-key": "k"}) as ws:
            await ws.send(json.dumps({"text": "Hello.", "context_id": "c"}))
            assert await asyncio.to_thread(engine.started.wait, 5)
            async with aiohttp.ClientSession(headers={"xi-api-key": "k"}) as http:
                async with http.get(f"{server.base_url}/v1/voices") as response:
                    assert response.status == 200
                # The loop answered while the engine was still busy synthesizing.
                answered_during_synthesis = not engine.finished.is_set()
            await asyncio.wait_for(ws.recv(), 5)
    assert answered_during_synthesis


async def test_the_fixtures_start_servers_with_the_fast_profile(
    latency_profile, openai_standin, elevenlabs_standin, pinecone_standin
):
    assert latency_profile == LatencyProfile.instant()
    for server in (openai_standin, elevenlabs_standin, pinecone_standin):
        assert server.started and server.profile is latency_profile
        assert server.base_url.startswith("http://127.0.0.1:")


def test_the_service_fixtures_point_at_the_stand_ins(standin_elevenlabs_tts, elevenlabs_standin):
    assert standin_elevenlabs_tts._url == elevenlabs_standin.ws_url
    assert standin_elevenlabs_tts._settings.voice == "standin"
