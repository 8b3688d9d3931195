"""Pipecat's real DeepgramFluxSTTService against the Flux (listen v2) stand-in."""

from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    EagerTranscriptionFrame,
    InterimTranscriptionFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    TranscriptionFrame,
)
from pipecat.services.deepgram.flux.stt import DeepgramFluxSTTService
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.standins import DeepgramStandin
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.stt_script import ScriptSegment, SttScript
from tests.standins.deepgram_audio import audio_frames, silence, speech

HELLO = ScriptSegment.from_text("Hello there my friend", 1.0)
HOW = ScriptSegment.from_text("how are you?", 0.6)

# Silence measured in received audio: eager EOT after 0.3 s, EOT after 0.8 s.
PROFILE = LatencyProfile.instant(flux_eager_eot_secs=0.3, flux_eot_secs=0.8)

FRAME_NAMES = {
    ProposedUserStartedSpeakingFrame: "start",
    InterimTranscriptionFrame: "update",
    EagerTranscriptionFrame: "eager",
    EagerEndOfTurnCancelFrame: "resumed",
    TranscriptionFrame: "final",
    ProposedUserStoppedSpeakingFrame: "stop",
}


def turn_frames(frames) -> list[tuple[str, str]]:
    out = []
    for f in frames:
        for cls, name in FRAME_NAMES.items():
            if type(f) is cls:
                out.append((name, getattr(f, "text", "")))
    return out


async def run_flux(standin: DeepgramStandin, pcm: bytes, **service_kwargs):
    stt = DeepgramFluxSTTService(api_key="test-key", url=standin.flux_url, **service_kwargs)
    down, _ = await run_test(stt, frames_to_send=[*audio_frames(pcm), SleepFrame(0.4)])
    return down


async def test_eager_end_of_turn_turn_resumed_and_end_of_turn_map_to_pipecat_frames():
    async with DeepgramStandin(profile=PROFILE) as deepgram:
        deepgram.set_script(SttScript.of([HELLO, HOW]))
        # The 0.5 s pause passes the eager threshold (0.3 s) but not the end of turn (0.8 s).
        pcm = silence(0.2) + speech(1.0) + silence(0.5) + speech(0.6) + silence(1.0)
        down = await run_flux(deepgram, pcm, enable_eager_end_of_turn=True)

    full = "Hello there my friend how are you?"
    assert turn_frames(down) == [
        ("start", ""),
        ("update", "Hello"),
        ("update", "Hello there"),
        ("update", "Hello there my"),
        ("update", "Hello there my friend"),
        ("eager", "Hello there my friend"),
        ("resumed", ""),
        ("update", "Hello there my friend how"),
        ("update", "Hello there my friend how are"),
        ("update", full),
        ("eager", full),
        ("final", full),
        ("stop", ""),
    ]
    final = next(f for f in down if isinstance(f, TranscriptionFrame))
    assert final.finalized
    stream = deepgram.streams[0]
    assert stream.query["eager_eot_threshold"] == "0.5"
    assert stream.sent[0] == {
        "type": "Connected",
        "request_id": stream.request_id,
        "sequence_id": 0,
    }
    assert [e for e, _ in stream.turn_events()][:2] == ["StartOfTurn", "Update"]


async def test_without_an_eager_threshold_a_long_pause_ends_the_turn():
    async with DeepgramStandin(profile=PROFILE) as deepgram:
        deepgram.set_script(SttScript.of([HELLO, HOW]))
        # 1.0 s of silence passes the end of turn: two turns, no eager events at all.
        pcm = silence(0.2) + speech(1.0) + silence(1.0) + speech(0.6) + silence(1.0)
        down = await run_flux(deepgram, pcm)

    names = [name for name, _ in turn_frames(down)]
    assert "eager" not in names and "resumed" not in names
    assert [t for n, t in turn_frames(down) if n == "final"] == [
        "Hello there my friend",
        "how are you?",
    ]
    assert names.count("start") == 2 and names.count("stop") == 2
    stream = deepgram.streams[0]
    ends = [m for m in stream.sent if m.get("event") == "EndOfTurn"]
    assert [m["turn_index"] for m in ends] == [0, 1]
    assert "eager_eot_threshold" not in stream.query


async def test_eot_timeout_from_the_url_caps_the_silence_before_end_of_turn():
    async with DeepgramStandin(profile=PROFILE) as deepgram:
        deepgram.set_script(SttScript.of([HELLO, HOW]))
        # A 0.5 s pause: within the profile's 0.8 s, but beyond the URL's 0.4 s timeout.
        pcm = silence(0.2) + speech(1.0) + silence(0.5) + speech(0.6) + silence(0.6)
        down = await run_flux(
            deepgram, pcm, settings=DeepgramFluxSTTService.Settings(eot_timeout_ms=400)
        )

    assert [t for n, t in turn_frames(down) if n == "final"] == [
        "Hello there my friend",
        "how are you?",
    ]
    assert deepgram.streams[0].query["eot_timeout_ms"] == "400"


async def test_a_bad_key_never_opens_a_flux_stream():
    async with DeepgramStandin(profile=PROFILE, api_key="secret") as deepgram:
        stt = DeepgramFluxSTTService(api_key="wrong", url=deepgram.flux_url)
        await run_test(stt, frames_to_send=[SleepFrame(0.2)])
    assert deepgram.stream_count == 0
    assert deepgram.stats.requests_total >= 1
