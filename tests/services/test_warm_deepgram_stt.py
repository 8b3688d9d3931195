"""WarmDeepgramSTTService against the Deepgram stand-in: timed, bounded, reported connections."""

import socket

from pipecat.frames.frames import TranscriptionFrame
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.services.warm_deepgram_stt_service import WarmDeepgramSTTService
from pipecat_speculative.services.warmup_report import WarmupKind
from pipecat_speculative.standins import DeepgramStandin
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.stt_script import ScriptSegment, SttScript
from tests.standins.deepgram_audio import audio_frames, silence, speech

HELLO = ScriptSegment.from_text("Hello there my friend", 1.0)
HOW = ScriptSegment.from_text("how are you?", 0.6)


def profile() -> LatencyProfile:
    return LatencyProfile.instant(
        stt_interim_interval_secs=0.1, new_connection_penalty_secs={"deepgram": 0.05}
    )


def finals(frames) -> list[str]:
    return [f.text for f in frames if isinstance(f, TranscriptionFrame)]


async def test_the_connection_is_ready_before_audio_and_its_warmup_is_reported(log_messages):
    async with DeepgramStandin(profile=profile()) as deepgram:
        deepgram.set_script(SttScript.of([HOW]))
        seen = []
        stt = WarmDeepgramSTTService(
            api_key="test", base_url=deepgram.base_url, warmup_listener=lambda *a: seen.append(a)
        )
        frames = [*audio_frames(silence(0.2) + speech(0.6) + silence(0.5)), SleepFrame(0.3)]
        down, _ = await run_test(stt, frames_to_send=frames)

    assert finals(down) == ["how are you?"]
    assert deepgram.stream_count == 1
    [report] = stt.warmup_reports
    assert report.ok and report.kind is WarmupKind.INITIAL and report.service == "deepgram"
    assert seen == [("deepgram", report.secs, True)]
    assert any("Deepgram connection warmed in" in m for m in log_messages)


async def test_a_dead_endpoint_does_not_hold_the_pipeline_start_beyond_the_budget(log_messages):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stt = WarmDeepgramSTTService(
        api_key="test", base_url=f"http://127.0.0.1:{port}", warmup_timeout_secs=0.5
    )
    # Stock waits for three failed attempts with >= 4 s backoff in between; the budget ends the
    # wait after the first (run_test's start_timeout would fail the test otherwise).
    await run_test(stt, frames_to_send=[SleepFrame(0.1)], start_timeout=5.0)
    [report] = stt.warmup_reports
    assert (report.kind, report.ok) == (WarmupKind.INITIAL, False)
    assert report.error == "not connected within 0.5 s"
    assert any(m.startswith("WARNING") and "Deepgram warmup failed" in m for m in log_messages)


async def test_a_reconnection_after_a_drop_is_reported_with_its_outage():
    async with DeepgramStandin(profile=profile()) as deepgram:
        deepgram.set_script(SttScript.of([HELLO, HOW]))
        deepgram.faults.disconnect(after=1, path="/v1/listen")
        stt = WarmDeepgramSTTService(api_key="test", base_url=deepgram.base_url)
        frames = [
            *audio_frames(silence(0.2) + speech(1.0)),
            SleepFrame(5.0),  # pipecat backs off >= 4 s before reconnecting
            *audio_frames(silence(0.3) + speech(0.6, pitch=0.13) + silence(0.5)),
            SleepFrame(0.3),
        ]
        down, _ = await run_test(stt, frames_to_send=frames)

    assert deepgram.stream_count == 2
    # The dropped utterance's audio is sent again on the new connection: no words lost.
    assert finals(down) == ["Hello there my friend", "how are you?"]
    kinds = [(r.kind, r.ok) for r in stt.warmup_reports]
    assert kinds == [(WarmupKind.INITIAL, True), (WarmupKind.RECONNECT, True)]
    assert stt.warmup_reports[1].secs >= 3.0  # the stock backoff, now visible


async def test_warm_false_is_stock_pipecat():
    async with DeepgramStandin(profile=profile()) as deepgram:
        stt = WarmDeepgramSTTService(api_key="test", base_url=deepgram.base_url, warm=False)
        await run_test(stt, frames_to_send=[SleepFrame(0.1)])
    assert stt.warmup_reports == [] and deepgram.stream_count == 1
