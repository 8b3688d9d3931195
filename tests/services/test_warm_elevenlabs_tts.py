"""WarmElevenLabsTTSService against the ElevenLabs stand-in: contexts ready ahead of text, reconnect."""

import asyncio
import json
import socket

from pipecat.frames.frames import (
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    TTSUpdateSettingsFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.services.warm_elevenlabs_tts_service import WarmElevenLabsTTSService
from pipecat_speculative.services.warmup_report import WarmupKind
from pipecat_speculative.standins import ElevenLabsStandin
from pipecat_speculative.standins.profile import LatencyProfile

PENALTY_SECS = 0.05


def profile(**overrides) -> LatencyProfile:
    values = {"new_connection_penalty_secs": {"elevenlabs": PENALTY_SECS}}
    values.update(overrides)
    return LatencyProfile.instant(**values)


def make_tts(url: str, **kwargs) -> WarmElevenLabsTTSService:
    return WarmElevenLabsTTSService(
        api_key="test",
        url=url,
        sample_rate=16000,
        settings=WarmElevenLabsTTSService.Settings(voice="standin"),
        **kwargs,
    )


def context_with_text(server: ElevenLabsStandin, text: str):
    return next(c for c in server.tts_stats.contexts if text in c.text)


async def test_the_socket_connects_at_setup_and_its_warmup_is_timed_and_reported(log_messages):
    async with ElevenLabsStandin(profile=profile(), speech="synthetic") as server:
        seen = []
        tts = make_tts(server.ws_url, warmup_listener=lambda *a: seen.append(a))
        down, _ = await run_test(tts, frames_to_send=[TTSSpeakFrame("Hello there.")])

    assert any(isinstance(f, TTSAudioRawFrame) for f in down)
    assert server.stats.websockets_opened == 1
    [report] = tts.warmup_reports
    assert report.ok and report.kind is WarmupKind.INITIAL and report.service == "elevenlabs"
    assert seen == [("elevenlabs", report.secs, True)]
    assert any("ElevenLabs warmup complete in" in m for m in log_messages)


async def test_the_responses_context_is_opened_before_its_text_arrives():
    async with ElevenLabsStandin(profile=profile(), speech="synthetic") as server:
        tts = make_tts(server.ws_url)
        frames = [
            SleepFrame(0.2),
            LLMFullResponseStartFrame(),
            SleepFrame(0.2),  # the LLM's first sentence takes a while
            LLMTextFrame("Here is the answer. "),
            LLMTextFrame("It has two sentences."),
            LLMFullResponseEndFrame(),
        ]
        down, _ = await run_test(tts, frames_to_send=frames)

    record = context_with_text(server, "Here is the answer.")
    # One context for the whole response, opened (voice settings sent) well before its text.
    assert record.first_text_at - record.opened_at >= 0.15
    assert record.final_sent_at is not None
    assert tts.preopened_contexts_used == 1
    assert sum(1 for c in server.tts_stats.contexts if c.text) == 1
    assert any(isinstance(f, TTSStoppedFrame) for f in down)


async def test_each_response_finds_its_context_ready_and_a_speculation_start_prepares_it():
    async with ElevenLabsStandin(profile=profile(), speech="synthetic") as server:
        tts = make_tts(server.ws_url)
        prepared: list[str | None] = []

        async def speculation_started():
            await asyncio.sleep(0.3)
            prepared.append(await tts.prepare_context())
            await tts.handle_speculation_started(object(), object())  # idempotent
            prepared.append(tts.pending_context_id)

        frames = [
            SleepFrame(0.6),
            TTSSpeakFrame("First answer."),
            SleepFrame(0.3),
            LLMFullResponseStartFrame(),
            LLMTextFrame("Second answer."),
            LLMFullResponseEndFrame(),
        ]
        await asyncio.gather(run_test(tts, frames_to_send=frames), speculation_started())

    first = context_with_text(server, "First answer.")
    second = context_with_text(server, "Second answer.")
    assert prepared[0] is not None and prepared == [prepared[0], prepared[0]]
    assert first.context_id == prepared[0]
    # The second response's context was opened when the first ended, before its own text.
    assert second.opened_at <= first.final_sent_at < second.first_text_at
    assert tts.preopened_contexts_used == 2
    assert server.stats.websockets_opened == 1


async def test_an_interruption_closes_a_preopened_context_that_got_no_text():
    async with ElevenLabsStandin(profile=profile(), speech="synthetic") as server:
        tts = make_tts(server.ws_url)
        frames = [
            SleepFrame(0.2),
            LLMFullResponseStartFrame(),
            SleepFrame(0.1),
            InterruptionFrame(),
            SleepFrame(0.2),
            TTSSpeakFrame("After the interruption."),
        ]
        await run_test(tts, frames_to_send=frames)

    unused = [c for c in server.tts_stats.contexts if not c.text and c.close_requested_at]
    assert len(unused) == 1  # the interrupted response's context, closed on the server
    spoken = context_with_text(server, "After the interruption.")
    assert spoken.opened_at < spoken.first_text_at and spoken.final_sent_at is not None


async def test_a_dropped_socket_reconnects_and_the_next_context_is_ready_on_the_new_socket(
    log_messages,
):
    async with ElevenLabsStandin(profile=profile(), speech="synthetic") as server:
        server.faults.disconnect(after=1, path="*/multi-stream-input")
        seen = []
        tts = make_tts(server.ws_url, warmup_listener=lambda *a: seen.append(a))
        frames = [
            TTSSpeakFrame("This sentence is long enough to need several audio messages."),
            SleepFrame(1.0),
            TTSSpeakFrame("After the drop."),
            SleepFrame(0.3),
        ]
        down, _ = await run_test(tts, frames_to_send=frames)

    assert server.stats.websockets_opened == 2
    assert [(r.kind, r.ok) for r in tts.warmup_reports] == [
        (WarmupKind.INITIAL, True),
        (WarmupKind.RECONNECT, True),
    ]
    assert [ok for *_, ok in seen] == [True, True]
    after = context_with_text(server, "After the drop.")
    assert after.socket_id == 2 and after.opened_at < after.first_text_at
    assert after.audio_messages > 0
    assert any("ElevenLabs reconnected and warm in" in m for m in log_messages)


async def test_a_dead_endpoint_fails_soft_and_the_pipeline_still_runs(log_messages):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tts = make_tts(f"ws://127.0.0.1:{port}", warmup_timeout_secs=1.0)
    await run_test(tts, frames_to_send=[SleepFrame(0.1)])
    [report] = tts.warmup_reports
    assert not report.ok and report.secs < 1.0 + 1.0
    assert any(m.startswith("WARNING") and "ElevenLabs warmup failed" in m for m in log_messages)


async def test_a_handshake_slower_than_the_budget_is_abandoned():
    slow = profile(new_connection_penalty_secs={"elevenlabs": 1.0})
    async with ElevenLabsStandin(profile=slow, speech="synthetic") as server:
        tts = make_tts(server.ws_url, warmup_timeout_secs=0.2)
        await run_test(tts, frames_to_send=[SleepFrame(0.1)])
        await asyncio.sleep(1.0)  # let the stand-in finish the abandoned handshake
    [report] = tts.warmup_reports[:1]
    assert not report.ok and report.secs < 1.0


async def test_warm_false_is_stock_pipecat():
    async with ElevenLabsStandin(profile=profile(), speech="synthetic") as server:
        tts = make_tts(server.ws_url, warm=False)
        frames = [LLMFullResponseStartFrame(), SleepFrame(0.2), LLMTextFrame("Hi there.")]
        await run_test(tts, frames_to_send=[*frames, LLMFullResponseEndFrame()])
    assert tts.warmup_reports == [] and tts.contexts_preopened == 0
    assert await tts.prepare_context() is None
    assert [c.text for c in server.tts_stats.contexts] == ["Hi there."]


async def test_the_keepalive_also_keeps_the_waiting_context_alive():
    async with ElevenLabsStandin(profile=profile(), speech="synthetic") as server:
        tts = make_tts(server.ws_url)
        sent: list[dict] = []

        async def keepalive_once():
            await asyncio.sleep(0.3)
            socket_send = tts._websocket.send

            async def recording_send(message):
                sent.append(json.loads(message))
                await socket_send(message)

            tts._websocket.send = recording_send
            await tts._send_keepalive()
            tts._websocket.send = socket_send

        await asyncio.gather(run_test(tts, frames_to_send=[SleepFrame(0.6)]), keepalive_once())

    pending = server.tts_stats.contexts[0].context_id
    assert {"text": ""} in sent  # the socket's own keepalive (stock)
    assert {"text": "", "context_id": pending} in sent


async def test_a_voice_settings_change_replaces_the_waiting_context():
    async with ElevenLabsStandin(profile=profile(), speech="synthetic") as server:
        tts = make_tts(server.ws_url)
        frames = [
            SleepFrame(0.2),
            TTSUpdateSettingsFrame(delta=WarmElevenLabsTTSService.Settings(stability=0.3)),
            SleepFrame(0.2),
            TTSSpeakFrame("With the new voice."),
        ]
        await run_test(tts, frames_to_send=frames)

    stale, fresh = server.tts_stats.contexts[:2]
    assert stale.text == "" and stale.close_requested_at is not None
    assert fresh.text == "With the new voice." and fresh.opened_at < fresh.first_text_at
