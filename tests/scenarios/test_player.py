"""Rendering scenario turns and feeding them into pipelines in real time."""

import asyncio

import numpy as np
import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.workers.runner import WorkerRunner

from pipecat_speculative.scenarios import load_builtin_scenario, parse_scenario
from pipecat_speculative.scenarios.player import RenderedScenario, render_scenario, render_turn
from pipecat_speculative.standins import DeepgramStandin
from pipecat_speculative.standins.deepgram_flux import FluxOptions, FluxSession
from pipecat_speculative.standins.deepgram_listen import ListenV1Options, ListenV1Session
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.stt_script import ScriptCursor
from pipecat_speculative.transports import ScenarioAudioInput

TWO_SEGMENTS = parse_scenario(
    {
        "turns": [
            {
                "segments": [
                    {"text": "I want to memorize the document that I have", "pause_after_ms": 800},
                    {"text": "and tell me the key points please"},
                ]
            }
        ]
    }
)
TWO_TURNS = parse_scenario(
    {
        "gap_after_bot_ms": 500,  # longer than the stand-in's 0.3 s endpointing floor
        "turns": [{"segments": ["Hello"]}, {"segments": ["Good morning to you"]}],
    }
)


def chunks_with_lead_in(pcm: bytes, lead_in_secs: float = 0.3, tail_secs: float = 1.5):
    audio = b"\x00\x00" * int(16000 * lead_in_secs) + pcm + b"\x00\x00" * int(16000 * tail_secs)
    return [audio[i : i + 640] for i in range(0, len(audio), 640)]


def test_a_rendered_turn_is_speech_and_real_silence_with_matching_truth():
    turn = render_turn(TWO_SEGMENTS.turns[0])
    first, second = turn.segments

    assert first.speech_start_secs == 0.0
    assert first.pause_after_secs == pytest.approx(0.8)
    assert second.speech_start_secs == pytest.approx(first.speech_end_secs + 0.8, abs=1e-4)
    assert second.speech_end_secs == pytest.approx(turn.duration_secs)
    assert (first.user_done, second.user_done) == (False, True)
    audio = np.frombuffer(turn.pcm, dtype="<i2")
    pause = audio[int(first.speech_end_secs * 16000) + 1 : int(second.speech_start_secs * 16000)]
    assert len(pause) > 12000 and not pause.any()  # digital silence
    assert turn.script.text == "I want to memorize the document that I have " + (
        "and tell me the key points please"
    )
    assert all(s.start_secs is None for s in turn.script.segments)  # anchored at onsets
    assert [len(c) for c in turn.chunks()][:2] == [640, 640]


def test_the_deepgram_core_transcribes_rendered_thinking_aloud_segment_by_segment():
    scenario = load_builtin_scenario("reference_conversation")
    turn = render_turn(scenario.turns[1])
    session = ListenV1Session(
        ListenV1Options(punctuate=True), ScriptCursor(turn.script), endpointing_floor_secs=0.3
    )

    finals = []
    for chunk in chunks_with_lead_in(turn.pcm):
        for message in session.on_audio(chunk):
            if message.kind == "final":
                finals.append(message.payload["channel"]["alternatives"][0]["transcript"])

    # Commas make Piper pause ~0.3 s inside a segment; only the pauses between segments end
    # an utterance, and no word is lost or doubled.
    assert finals == [s.text for s in scenario.turns[1].segments]


def test_the_flux_core_withdraws_eager_ends_while_the_user_thinks_aloud():
    scenario = load_builtin_scenario("reference_conversation")
    turn = render_turn(scenario.turns[1])
    session = FluxSession(
        FluxOptions(eager_eot_threshold=0.5),
        ScriptCursor(turn.script),
        eager_eot_secs=0.3,
        eot_secs=1.5,  # longer than every pause of the turn
    )

    events = []
    for chunk in chunks_with_lead_in(turn.pcm, tail_secs=2.0):
        events += [m.payload["event"] for m in session.on_audio(chunk)]

    pauses = len(turn.segments) - 1
    assert events.count("EagerEndOfTurn") == pauses + 1
    assert events.count("TurnResumed") == pauses
    assert events.count("StartOfTurn") == 1 and events[-1] == "EndOfTurn"


class Collector(FrameProcessor):
    def __init__(self):
        super().__init__()
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if not isinstance(frame, InputAudioRawFrame):
            self.frames.append(frame)
        await self.push_frame(frame, direction)


async def run_pipeline(processors, play):
    """Run a pipeline while ``play(worker)`` drives it, then end it."""
    worker = PipelineWorker(Pipeline(processors), cancel_on_idle_timeout=False)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    try:
        result = await asyncio.wait_for(play(worker), timeout=60)
    finally:
        await worker.queue_frame(EndFrame())
        await asyncio.wait_for(run, timeout=10)
    return result


async def test_a_scenario_played_in_real_time_is_transcribed_by_deepgram():
    rendered = await render_scenario(TWO_TURNS)
    user = ScenarioAudioInput()
    collector = Collector()
    async with DeepgramStandin(profile=LatencyProfile.instant()) as deepgram:
        deepgram.set_script(rendered.script)
        stt = DeepgramSTTService(api_key="k", base_url=deepgram.base_url)

        async def play(worker):
            playbacks = await user.play_scenario(rendered, wait_for_bot=False, lead_in_secs=0.3)
            await user.send_silence(0.6)  # endpointing needs the pause after the last word
            return playbacks

        playbacks = await run_pipeline([user, stt, collector], play)

    texts = [f.text for f in collector.frames if isinstance(f, TranscriptionFrame)]
    assert texts == ["Hello", "Good morning to you"]
    first, second = playbacks
    assert first.stream_start_secs == pytest.approx(0.3, abs=0.021)
    # The user waited the scenario's gap (no bot here) after the end of the first turn.
    assert second.stream_start_secs - first.speech_end_stream_secs == pytest.approx(0.5, abs=0.05)
    assert first.speech_end_wall is not None and second.wall_start > first.speech_end_wall
    assert first.bot_answered is None
    assert deepgram.streams[0].audio_secs > second.speech_end_stream_secs


async def test_silero_in_the_pipeline_stops_once_per_segment_after_its_real_end():
    rendered = await render_scenario(TWO_SEGMENTS)
    user = ScenarioAudioInput()
    vad = VADProcessor(vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=0.2)))
    collector = Collector()

    async def play(worker):
        playbacks = await user.play_scenario(rendered, wait_for_bot=False)
        await user.send_silence(0.6)
        return playbacks

    (playback,) = await run_pipeline([user, vad, collector], play)

    stops = [f for f in collector.frames if isinstance(f, VADUserStoppedSpeakingFrame)]
    assert len(stops) == 2
    for stop, end_wall in zip(stops, playback.segment_end_wall, strict=True):
        # stop_secs after the real end of speech, plus pipeline and machine delays.
        assert 0.1 < stop.timestamp - end_wall < 1.5


async def test_the_user_waits_for_the_bot_to_finish_before_the_next_turn():
    rendered = await render_scenario(TWO_TURNS)
    user = ScenarioAudioInput()
    spoken: asyncio.Queue = asyncio.Queue()

    @user.event_handler("on_turn_spoken")
    async def on_turn_spoken(_input, playback):
        spoken.put_nowait(playback)

    async def answer(worker) -> float:
        """The bot speaks for 0.6 s, as the output transport reports it upstream."""
        await asyncio.sleep(0.2)
        await worker.queue_frame(BotStartedSpeakingFrame(), FrameDirection.UPSTREAM)
        await asyncio.sleep(0.6)
        await worker.queue_frame(BotStoppedSpeakingFrame(), FrameDirection.UPSTREAM)
        await asyncio.sleep(0.05)
        return user.stream_position_secs

    async def play(worker):
        playing = asyncio.create_task(
            user.play_scenario(rendered, lead_in_secs=0.1, bot_timeout_secs=10)
        )
        answered_at = []
        for _ in rendered.turns:
            await spoken.get()
            answered_at.append(await answer(worker))
        return await playing, answered_at

    (first, second), (first_answered_at, _) = await run_pipeline([user], play)

    assert first.bot_answered is True and second.bot_answered is True
    # The next turn starts after the bot stopped, plus the scenario's 0.5 s gap.
    assert second.stream_start_secs >= first_answered_at + 0.5 - 0.1
    assert second.stream_start_secs - first.speech_end_stream_secs > 0.8


async def test_an_unanswered_turn_times_out_and_an_event_can_stand_for_the_bot():
    rendered = await render_scenario(TWO_TURNS)
    one_turn = RenderedScenario(rendered.scenario, rendered.turns[:1])
    user = ScenarioAudioInput()
    bot_done = asyncio.Event()

    @user.event_handler("on_turn_spoken")
    async def on_turn_spoken(_input, playback):
        bot_done.set()

    async def play(worker):
        (silent,) = await user.play_scenario(one_turn, lead_in_secs=0.1, bot_timeout_secs=0.3)
        (answered,) = await user.play_scenario(
            one_turn, lead_in_secs=0.0, bot_finished=bot_done, bot_timeout_secs=5.0
        )
        return silent, answered

    silent, answered = await run_pipeline([user], play)

    assert silent.bot_answered is False
    assert answered.bot_answered is True
    assert len(user.playbacks) == 2
