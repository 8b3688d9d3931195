"""Pipecat's real DeepgramSTTService against the listen v1 stand-in."""

import asyncio
import json
import time

import aiohttp
import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.standins import DeepgramStandin
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.stt_script import ScriptSegment, SttScript
from tests.standins.deepgram_audio import audio_frames, silence, speech

HELLO = ScriptSegment.from_text("Hello there my friend", 1.0)  # words end every 0.25 s
HOW = ScriptSegment.from_text("how are you?", 0.6)


def fast_profile(**overrides) -> LatencyProfile:
    # Interims more often than words end: one interim per word, whatever the chunking.
    return LatencyProfile.instant(stt_interim_interval_secs=0.1, **overrides)


def transcripts(frames) -> list[tuple[str, str, bool]]:
    out = []
    for f in frames:
        if isinstance(f, TranscriptionFrame):
            out.append(("final", f.text, f.finalized))
        elif isinstance(f, InterimTranscriptionFrame):
            out.append(("interim", f.text, False))
    return out


async def run_stt(standin: DeepgramStandin, frames, **service_kwargs):
    stt = DeepgramSTTService(api_key="test-key", base_url=standin.base_url, **service_kwargs)
    down, up = await run_test(stt, frames_to_send=[*frames, SleepFrame(0.3)])
    return down, up


async def test_interims_follow_the_audio_and_finalize_gives_a_finalized_transcript():
    async with DeepgramStandin(profile=fast_profile()) as deepgram:
        deepgram.set_script(SttScript.of([HELLO]))
        pcm = silence(0.2) + speech(1.0) + silence(0.2)
        down, _ = await run_stt(deepgram, [*audio_frames(pcm), VADUserStoppedSpeakingFrame()])

    assert transcripts(down) == [
        ("interim", "Hello", False),
        ("interim", "Hello there", False),
        ("interim", "Hello there my", False),
        ("interim", "Hello there my friend", False),
        ("final", "Hello there my friend", True),
    ]
    stream = deepgram.streams[0]
    assert stream.finalize_requests == 1
    assert stream.results(is_final=True) == ["Hello there my friend"]
    assert stream.sent[-1]["type"] == "Metadata"  # pipecat closes with CloseStream
    assert stream.close_stream


async def test_a_pause_reaching_endpointing_sends_speech_final_and_finalize_repeats_nothing():
    async with DeepgramStandin(profile=fast_profile(), endpointing_floor_secs=0.3) as deepgram:
        deepgram.set_script(SttScript.of([HELLO]))
        pcm = silence(0.2) + speech(1.0) + silence(0.5)
        down, _ = await run_stt(deepgram, [*audio_frames(pcm), VADUserStoppedSpeakingFrame()])

    finals = [t for t in transcripts(down) if t[0] == "final"]
    assert finals == [("final", "Hello there my friend", False)]
    stream = deepgram.streams[0]
    endpointed = [m for m in stream.sent if m.get("type") == "Results" and m["is_final"]]
    assert [(m["speech_final"], m["from_finalize"]) for m in endpointed] == [
        (True, False),
        (False, True),
    ]
    # The Finalize answer carries no word that was already final.
    assert stream.results(is_final=True) == ["Hello there my friend", ""]


async def test_finalize_on_a_short_pause_then_the_rest_of_the_utterance():
    async with DeepgramStandin(profile=fast_profile()) as deepgram:
        deepgram.set_script(SttScript.of([HELLO, HOW]))
        first = silence(0.2) + speech(1.0) + silence(0.25)
        rest = speech(0.6) + silence(0.5)
        down, _ = await run_stt(
            deepgram, [*audio_frames(first), VADUserStoppedSpeakingFrame(), *audio_frames(rest)]
        )

    finals = [t for t in transcripts(down) if t[0] == "final"]
    assert finals == [
        ("final", "Hello there my friend", True),
        ("final", "how are you?", False),
    ]


async def test_words_whose_audio_has_not_arrived_are_not_transcribed():
    async with DeepgramStandin(profile=fast_profile()) as deepgram:
        deepgram.set_script(SttScript.of([HELLO]))
        # Only 0.55 s of the 1 s segment: "Hello" (0.25) and "there" (0.5) are complete.
        pcm = silence(0.2) + speech(0.55)
        down, _ = await run_stt(deepgram, [*audio_frames(pcm), VADUserStoppedSpeakingFrame()])

    finals = [t for t in transcripts(down) if t[0] == "final"]
    assert finals == [("final", "Hello there", True)]


async def test_the_tag_in_the_url_selects_the_script():
    async with DeepgramStandin(profile=fast_profile()) as deepgram:
        deepgram.set_script(SttScript.of([HELLO]))
        deepgram.set_script(SttScript.of([HOW]), tag="bob")
        pcm = silence(0.2) + speech(0.6) + silence(0.5)
        down, _ = await run_stt(deepgram, audio_frames(pcm), tag="bob")

    assert [t for t in transcripts(down) if t[0] == "final"] == [("final", "how are you?", False)]
    assert deepgram.streams[0].tag == "bob"
    assert deepgram.script_progress("bob") == 1
    assert deepgram.script_progress() == 0


async def test_a_drop_mid_utterance_reconnects_and_continues_with_the_next_segment():
    async with DeepgramStandin(profile=fast_profile()) as deepgram:
        deepgram.set_script(SttScript.of([HELLO, HOW]))
        deepgram.faults.disconnect(after=1, path="/v1/listen")  # right after the first interim
        frames = [
            *audio_frames(silence(0.2) + speech(1.0)),
            # pipecat backs off (>= 4 s) before it reconnects; the audio meanwhile is lost.
            SleepFrame(5.0),
            *audio_frames(silence(0.3) + speech(0.6, pitch=0.13) + silence(0.5)),
        ]
        down, up = await run_stt(deepgram, frames)

    assert deepgram.stream_count == 2
    assert deepgram.streams[0].dropped
    assert deepgram.streams[0].results() == ["Hello"]
    # The rest of the dropped segment is lost; the next one is transcribed on the new stream.
    assert [t for t in transcripts(down) if t[0] == "final"] == [("final", "how are you?", False)]
    assert any(isinstance(f, ErrorFrame) for f in up)


async def test_a_bad_key_is_refused_at_the_handshake():
    async with DeepgramStandin(profile=fast_profile(), api_key="secret") as deepgram:
        async with aiohttp.ClientSession() as http:
            for headers in (
                {},
                {"Authorization": "Token wrong"},
                {"Authorization": "Bearer secret"},
            ):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(f"{deepgram.ws_url}/v1/listen", headers=headers)
                assert refused.value.status == 401
            ws = await http.ws_connect(
                f"{deepgram.ws_url}/v1/listen?model=nova-3",
                headers={"Authorization": "Token secret"},
            )
            await ws.close()
    assert deepgram.stream_count == 1


async def raw_session(deepgram: DeepgramStandin, query: str = "punctuate=true"):
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(
        f"{deepgram.ws_url}/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000&{query}",
        headers={"Authorization": "Token k"},
    )
    return http, ws


async def test_a_malformed_message_is_sent_when_armed():
    async with DeepgramStandin(profile=fast_profile()) as deepgram:
        deepgram.set_script(SttScript.of([HELLO]))
        deepgram.faults.malformed("invalid_json", after=0, path="/v1/listen")
        http, ws = await raw_session(deepgram)
        try:
            await ws.send_bytes(silence(0.2) + speech(1.0))
            await ws.send_str(json.dumps({"type": "Finalize"}))
            broken = await asyncio.wait_for(ws.receive(), 5)
            good = await asyncio.wait_for(ws.receive(), 5)
        finally:
            await ws.close()
            await http.close()
    with pytest.raises(ValueError):
        json.loads(broken.data)
    assert json.loads(good.data)["from_finalize"] is True


async def test_an_armed_delay_holds_back_the_final_result():
    async with DeepgramStandin(profile=fast_profile()) as deepgram:
        deepgram.set_script(SttScript.of([HELLO]))
        deepgram.faults.slow_first_byte(0.4, path="/v1/listen")
        http, ws = await raw_session(deepgram)
        try:
            await ws.send_bytes(silence(0.2) + speech(1.0))
            sent_at = time.monotonic()
            await ws.send_str(json.dumps({"type": "Finalize"}))
            message = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            waited = time.monotonic() - sent_at
        finally:
            await ws.close()
            await http.close()
    assert message["from_finalize"] is True
    assert message["channel"]["alternatives"][0]["transcript"] == "Hello there my friend"
    assert waited >= 0.4


async def test_close_stream_flushes_pending_words_then_sends_metadata_and_closes():
    async with DeepgramStandin(profile=fast_profile()) as deepgram:
        deepgram.set_script(SttScript.of([HELLO]))
        http, ws = await raw_session(deepgram)
        try:
            await ws.send_bytes(silence(0.2) + speech(1.0))
            await ws.send_str(json.dumps({"type": "CloseStream"}))
            messages = [json.loads(m.data) async for m in ws if m.type == aiohttp.WSMsgType.TEXT]
        finally:
            await http.close()
    assert [m["type"] for m in messages] == ["Results", "Metadata"]
    assert messages[0]["is_final"] and messages[0]["speech_final"]
    assert messages[1]["duration"] == pytest.approx(1.2, abs=0.01)
    assert messages[0]["metadata"]["model_info"]["name"] == "nova-3"


async def test_results_are_delayed_by_the_profiles_stt_delay():
    async with DeepgramStandin(
        profile=LatencyProfile.instant(stt_final_delay_secs=0.3)
    ) as deepgram:
        deepgram.set_script(SttScript.of([HELLO]))
        http, ws = await raw_session(deepgram)
        try:
            await ws.send_bytes(silence(0.2) + speech(1.0))
            sent_at = time.monotonic()
            await ws.send_str(json.dumps({"type": "Finalize"}))
            await asyncio.wait_for(ws.receive(), 5)
            waited = time.monotonic() - sent_at
        finally:
            await ws.close()
            await http.close()
    assert waited >= 0.3


async def test_a_script_set_after_the_connection_opened_is_played():
    async with DeepgramStandin(profile=fast_profile()) as deepgram:
        http, ws = await raw_session(deepgram)
        try:
            await ws.send_bytes(silence(0.2) + speech(1.0) + silence(0.2))  # no script yet
            deepgram.set_script(SttScript.of([HOW]))
            await ws.send_bytes(speech(0.6) + silence(0.2))
            await ws.send_str(json.dumps({"type": "Finalize"}))
            message = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
        finally:
            await ws.close()
            await http.close()
    assert message["channel"]["alternatives"][0]["transcript"] == "how are you?"


async def test_unsupported_encodings_are_refused():
    async with DeepgramStandin(profile=fast_profile()) as deepgram:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(
                    f"{deepgram.ws_url}/v1/listen?model=nova-3&encoding=opus",
                    headers={"Authorization": "Token k"},
                )
    assert refused.value.status == 400
