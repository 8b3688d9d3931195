"""Deepgram Flux faults: Pipecat's own Flux service on the Flux stand-in.

The plugin runs Flux through stock ``DeepgramFluxSTTService``; these pin what a user gets from it.
"""

from __future__ import annotations

import pytest
from pipecat.services.deepgram.flux.stt import DeepgramFluxSTTService
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.standins import DeepgramStandin
from pipecat_speculative.standins.stt_script import SttScript
from tests.standins.deepgram_audio import audio_frames, silence, speech
from tests.standins.test_deepgram_flux import HELLO, HOW, PROFILE, turn_frames

WHOLE_TURNS = [
    ("start", ""),
    ("update", "Hello"),
    ("update", "Hello there"),
    ("update", "Hello there my"),
    ("update", "Hello there my friend"),
    ("eager", "Hello there my friend"),
    ("final", "Hello there my friend"),
    ("stop", ""),
    ("start", ""),
    ("update", "how"),
    ("update", "how are"),
    ("update", "how are you?"),
    ("eager", "how are you?"),
    ("final", "how are you?"),
    ("stop", ""),
]


async def two_turns(deepgram: DeepgramStandin):
    stt = DeepgramFluxSTTService(
        api_key="test", url=deepgram.flux_url, enable_eager_end_of_turn=True
    )
    frames = [
        *audio_frames(silence(0.2) + speech(1.0) + silence(1.0)),
        SleepFrame(0.3),  # the user pauses (a reconnection completes meanwhile)
        *audio_frames(silence(0.3) + speech(0.6, pitch=0.13) + silence(1.0)),
        SleepFrame(0.4),
    ]
    down, _ = await run_test(stt, frames_to_send=frames)
    return turn_frames(down)


@pytest.mark.parametrize("kind", ["invalid_json", "missing_fields"])
async def test_a_malformed_flux_message_is_skipped_and_both_turns_are_whole(kind, all_logs):
    async with DeepgramStandin(profile=PROFILE) as deepgram:
        deepgram.set_script(SttScript.of([HELLO, HOW]))
        fault = deepgram.faults.malformed(kind, after=2, path="/v2/listen")
        turns = await two_turns(deepgram)
    assert fault.fired == 1
    assert turns == WHOLE_TURNS
    assert deepgram.stream_count == 1  # the socket was kept
    if kind == "invalid_json":
        assert any(m.startswith("ERROR") and "Failed to decode JSON" in m for m in all_logs)


async def test_a_flux_drop_mid_turn_closes_that_turn_and_the_next_one_is_whole():
    # Cut after "Hello": Pipecat reconnects at once and ends the open turn with what it heard.
    # The rest of that utterance ("there my friend") is lost: stock Flux keeps no audio to
    # send again (the listen v1 service of this plugin does, see test_stt_faults.py).
    async with DeepgramStandin(profile=PROFILE) as deepgram:
        deepgram.set_script(SttScript.of([HELLO, HOW]))
        fault = deepgram.faults.disconnect(after=2, path="/v2/listen")
        turns = await two_turns(deepgram)
    assert fault.fired == 1 and deepgram.stream_count == 2
    assert turns[:4] == [("start", ""), ("update", "Hello"), ("final", "Hello"), ("stop", "")]
    assert turns[4:] == WHOLE_TURNS[8:]  # the next turn, whole, on the new connection
