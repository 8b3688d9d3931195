"""TTS faults through the warm ElevenLabs WebSocket service on the stand-in, in a real pipeline.

What the user gets from each: the sentence (less one bad message's audio), or a cut sentence that
says it was cut (an ErrorFrame upstream and its TTSStoppedFrame at once), and the next sentence
spoken in full; never a turn left open.

And Pipecat's HTTP service on the plugin's shared session, cut mid-synthesis.

Covered elsewhere: a message that is not JSON (test_malformed_elevenlabs.py).
"""

from __future__ import annotations

from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.services.elevenlabs.tts import ElevenLabsHttpTTSService
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.services.elevenlabs_http_session import ElevenLabsHttpSession
from pipecat_speculative.standins import ElevenLabsStandin
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.turns.speculation_events import WithdrawalReason
from tests.processors.test_speculative_tts import make_rig, run, spoken
from tests.reliability.test_malformed_elevenlabs import make_tts
from tests.turns.timeline import Timeline

FIRST = "This sentence is long enough to be sent as several audio messages by the server."
SECOND = "And here is a second sentence for the record."


def standin() -> ElevenLabsStandin:
    return ElevenLabsStandin(profile=LatencyProfile.instant(), speech="synthetic")


async def speak_two(tts, *, gap_secs: float = 0.5) -> tuple[list[Frame], list[Frame]]:
    frames = [TTSSpeakFrame(FIRST), SleepFrame(gap_secs), TTSSpeakFrame(SECOND), SleepFrame(0.5)]
    return await run_test(tts, frames_to_send=frames)


def playback(down: list[Frame]) -> list[tuple[str, str | None]]:
    """Started/stopped frames and runs of audio, in order, with their context ids."""
    out: list[tuple[str, str | None]] = []
    for f in down:
        if isinstance(f, (TTSStartedFrame, TTSStoppedFrame, TTSAudioRawFrame)):
            name = type(f).__name__
            if out and name == "TTSAudioRawFrame" and out[-1] == (name, f.context_id):
                continue
            out.append((name, f.context_id))
    return out


def audio_of(down: list[Frame], context_id: str) -> int:
    return sum(isinstance(f, TTSAudioRawFrame) and f.context_id == context_id for f in down)


def record_of(server: ElevenLabsStandin, text: str):
    return next(c for c in server.tts_stats.contexts if text in c.text)


async def test_a_drop_mid_sentence_cuts_it_says_so_and_the_next_sentence_is_whole(all_logs):
    async with standin() as server:
        fault = server.faults.disconnect(after=2)
        tts = make_tts(server.ws_url)
        down, up = await speak_two(tts)
        first, second = record_of(server, FIRST), record_of(server, SECOND)
    assert fault.fired == 1 and first.audio_messages == 2
    one, two = first.context_id, second.context_id
    # The cut sentence ends right after its last audio, before the next one starts.
    assert playback(down) == [
        ("TTSStartedFrame", one),
        ("TTSAudioRawFrame", one),
        ("TTSStoppedFrame", one),
        ("TTSStartedFrame", two),
        ("TTSAudioRawFrame", two),
        ("TTSStoppedFrame", two),
    ]
    assert audio_of(down, one) == 2 and audio_of(down, two) == second.audio_messages
    errors = [f.error for f in up if isinstance(f, ErrorFrame)]
    assert len(errors) == 1 and "dropped mid-sentence" in errors[0] and "(cut)" in errors[0]
    assert tts.contexts_cut == 1 and tts.contexts_without_final == 0
    assert server.stats.websockets_opened == 2  # reconnected for the next sentence


async def test_an_audio_message_that_is_not_base64_is_skipped_and_the_sentence_goes_on(all_logs):
    async with standin() as server:
        fault = server.faults.malformed("invalid_base64", after=2)
        tts = make_tts(server.ws_url)
        down, up = await speak_two(tts)
        first, second = record_of(server, FIRST), record_of(server, SECOND)
    assert fault.fired == 1
    # Every good audio message of both sentences arrived; only the bad one is missing.
    assert audio_of(down, first.context_id) == first.audio_messages > 3
    assert audio_of(down, second.context_id) == second.audio_messages
    assert [n for n, _ in playback(down)].count("TTSStoppedFrame") == 2
    assert not any(isinstance(f, ErrorFrame) for f in up)
    assert server.stats.websockets_opened == 1  # the socket was kept
    assert tts.malformed_messages_skipped == 1 and tts.contexts_cut == 0
    assert any(m.startswith("WARNING") and "not base64" in m for m in all_logs)


async def test_an_is_final_that_never_comes_is_bounded_and_closed_with_a_stop_frame(all_logs):
    async with standin() as server:
        fault = server.faults.withhold_final()
        tts = make_tts(server.ws_url, stop_frame_timeout_s=0.2)
        down, _ = await speak_two(tts, gap_secs=0.6)
        first, second = record_of(server, FIRST), record_of(server, SECOND)
    assert fault.fired == 1 and first.final_sent_at is None
    one, two = first.context_id, second.context_id
    assert playback(down) == [
        ("TTSStartedFrame", one),
        ("TTSAudioRawFrame", one),
        ("TTSStoppedFrame", one),  # pushed by the service once the audio stopped coming
        ("TTSStartedFrame", two),
        ("TTSAudioRawFrame", two),
        ("TTSStoppedFrame", two),
    ]
    assert audio_of(down, one) == first.audio_messages
    assert audio_of(down, two) == second.audio_messages
    assert tts.contexts_without_final == 1
    assert any(m.startswith("WARNING") and "never sent isFinal" in m for m in all_logs)


async def test_the_http_tts_cut_mid_synthesis_says_so_and_the_next_sentence_is_whole():
    # Pipecat's ElevenLabsHttpTTSService through the plugin's shared session: the stream is cut
    # after two chunks. The sentence is cut with an ErrorFrame and closed with its stop frame;
    # the session opens a new connection for the next sentence.
    async with standin() as server:
        fault = server.faults.disconnect(after=2)
        async with ElevenLabsHttpSession(api_key="test", base_url=server.base_url) as http:
            tts = ElevenLabsHttpTTSService(
                api_key="test",
                base_url=server.base_url,
                aiohttp_session=http.session,
                sample_rate=16000,
                settings=ElevenLabsHttpTTSService.Settings(voice="standin"),
            )
            down, up = await speak_two(tts)
    assert fault.fired == 1
    (cut, whole) = [f.context_id for f in down if isinstance(f, TTSStartedFrame)]
    assert playback(down) == [
        ("TTSStartedFrame", cut),
        ("TTSAudioRawFrame", cut),
        ("TTSStoppedFrame", cut),
        ("TTSStartedFrame", whole),
        ("TTSAudioRawFrame", whole),
        ("TTSStoppedFrame", whole),
    ]
    errors = [f.error for f in up if isinstance(f, ErrorFrame)]
    assert len(errors) == 1 and "payload is not completed" in errors[0]
    second = next(r for r in server.requests if r.info.get("characters") == len(SECOND))
    assert second.status == 200 and audio_of(down, whole) > audio_of(down, cut)


async def test_a_drop_during_a_withdrawn_speculative_synthesis_leaks_nothing():
    # Speculative TTS: the held answer to "I want" is being synthesized when the user goes on;
    # the socket drops while the server is still on that withdrawn context. Nothing of the
    # withdrawn answer is heard, no cut is reported for it (nobody was to hear it), and the real
    # answer is synthesized whole on the reconnected socket.
    profile = LatencyProfile.instant(tts_first_audio_secs=0.6, tts_speed_factor=2.0)
    async with ElevenLabsStandin(profile=profile, speech="synthetic") as server:
        fault = server.faults.disconnect(after=0)
        rig, tts, gate = make_rig(server)
        timeline = (
            Timeline()
            .say("I want", pause_after_secs=0.45)
            .say("a table for two", pause_after_secs=1.5)
        )
        down = await run(rig, tts, gate, timeline.frames())
    assert fault.fired == 1
    assert [r.withdrawal_reason for r in rig.names("on_speculation_withdrawn")] == [
        WithdrawalReason.RESUMED
    ]
    assert spoken(down) == "ANSWER: I want a table for two"
    assert sum(isinstance(f, TTSStartedFrame) for f in down) == 1
    answer = next(c for c in server.tts_stats.contexts if "table" in c.text)
    assert audio_of(down, answer.context_id) == answer.audio_messages > 0
    assert server.stats.websockets_opened == 2 and tts.contexts_cut == 0
