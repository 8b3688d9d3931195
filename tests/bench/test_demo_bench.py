"""The demo and the bench end to end: real Pipecat services and clients against the stand-ins.

Every pipeline here runs the real openai client (OpenAILLMService), the deepgram-sdk (Deepgram
listen v1 and Flux) and websockets (ElevenLabs) against loopback stand-ins on the fast profile,
with Piper user speech played in real time. Timing is not asserted (the machine may be busy);
what is asserted is what must hold on any machine: one answer per committed turn, and every
field of the bench JSON.
"""

import asyncio
import json
import time
import wave

import pytest
import yaml
from pipecat.frames.frames import OutputAudioRawFrame
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.deepgram.flux.stt import DeepgramFluxSTTService
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.openai.llm import OpenAILLMService
from rich.console import Console

from pipecat_speculative.bench import (
    BENCH_SYSTEMS,
    LATENCY_FIELDS,
    BenchOptions,
    limit_ms,
    run_bench,
    score_session,
)
from pipecat_speculative.demo import run_demo, waterfall_rows
from pipecat_speculative.frames import SpeculationStage
from pipecat_speculative.metrics.turn_record import SpeculationEntry, TurnRecord
from pipecat_speculative.offline_session import SessionResult
from pipecat_speculative.pipeline_builder import (
    BotPipelineConfig,
    ServiceEndpoints,
    SystemKind,
    build_bot_pipeline,
    warm_llm_available,
)
from pipecat_speculative.processors import SpeculativeOutputGate
from pipecat_speculative.scenarios.player import TurnPlayback, render_turn
from pipecat_speculative.scenarios.scenario import parse_scenario
from pipecat_speculative.services.openai_llm_service import SpeculativeOpenAILLMService
from pipecat_speculative.services.speculative_tts_mixin import SpeculativeTTSMixin
from pipecat_speculative.services.warm_deepgram_stt import WarmDeepgramSTTService
from pipecat_speculative.services.warm_elevenlabs_tts import WarmElevenLabsTTSService
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.transports import PacedOutputTransport

TINY = {
    "name": "tiny",
    "gap_after_bot_ms": 400,
    "turns": [
        {"segments": ["Hello there"]},
        {"needs_rag": True, "segments": ["What does the document say about pricing?"]},
    ],
}

SYSTEM_FIELDS = (
    *LATENCY_FIELDS,
    "cancel_rate",
    "wasted_llm_tokens_per_turn",
    "false_commit_rate",
    "answers_per_committed_turn",
)


@pytest.fixture
def tiny_suite(tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    profile = tmp_path / "fast.yaml"
    profile.write_text(yaml.safe_dump({"base": "instant"}))
    return scenarios, profile


def quiet_console() -> Console:
    return Console(file=open("/dev/null", "w"), width=120)  # noqa: SIM115


async def test_the_bench_runs_every_system_with_one_answer_per_committed_turn(tiny_suite, tmp_path):
    scenarios, profile = tiny_suite
    out = tmp_path / "bench.json"

    document = await run_bench(
        BenchOptions(
            scenarios_dir=scenarios,
            profile_path=profile,
            json_path=out,
            playback_speed=8.0,
            rag=False,
        ),
        console=quiet_console(),
    )

    assert json.loads(out.read_text()) == json.loads(json.dumps(document))
    assert set(document["systems"]) == {s.value for s in BENCH_SYSTEMS}
    assert set(document["limit_ms"]) == {"p50", "p95"}
    for name, system in document["systems"].items():
        for field in SYSTEM_FIELDS:
            assert field in system, (name, field)
        for field in LATENCY_FIELDS:
            assert {"p50", "p95"} <= set(system[field]), (name, field)
        # Each user finished every turn in one breath: no false commit is possible, and every
        # committed turn is answered exactly once.
        assert system["committed_turns"] == 2, name
        assert system["answers_per_committed_turn"] == 1.0, name
        assert system["false_commit_rate"] == 0.0, name
        assert system["unanswered_user_turns"] == 0, name
        assert system["latency_ms"]["p50"] > 0, name
        # No retrieval runs (rag off), so the needs-RAG turns are not labelled RAG turns.
        assert system["latency_ms_rag"]["p50"] is None, name
        assert system["latency_ms_rag_unretrieved"]["p50"] is not None, name
        assert system["first_turn_latency_ms"]["p50"] is not None, name
    assert document["systems"]["stock"]["cancel_rate"] is None  # it never speculates
    assert document["systems"]["speculative"]["speculations"]["adopted"] >= 1
    # The first version's fields describe the only profile; the map holds the same block.
    (block,) = document["profiles"].values()
    assert block["systems"] == document["systems"] and block["limit_ms"] == document["limit_ms"]
    (debounce,) = document["systems"]["speculative"]["debounce"]
    assert debounce["scenario"] == "tiny" and debounce["end_ms"] >= 0


async def test_the_demo_writes_turns_and_a_wav_of_both_sides(tiny_suite, tmp_path):
    scenarios, profile = tiny_suite
    out = tmp_path / "out"

    result = await run_demo(
        out_dir=out,
        scenario=str(scenarios / "tiny.yaml"),
        profile_path=profile,
        console=quiet_console(),
        configure_logging=False,
        playback_speed=8.0,
    )

    lines = [json.loads(line) for line in (out / "demo_turns.jsonl").read_text().splitlines()]
    turns = [line for line in lines if line["record"] == "turn"]
    assert len(turns) == 2 and all(t["answers"] == 1 for t in turns)
    assert [line["record"] for line in lines][-1] == "session"
    with wave.open(str(out / "demo_conversation.wav")) as wav:
        assert wav.getframerate() == 16000
        secs = wav.getnframes() / 16000
    user_secs = sum(p.turn.duration_secs for p in result.playbacks)
    assert secs > user_secs  # user speech and the bot's answers
    assert waterfall_rows(result.records[0])[0] == (0.0, "end of speech (t0)", "bold")


@pytest.mark.parametrize("system", list(SystemKind))
async def test_the_builder_wires_each_system_with_its_services(system):
    endpoints = ServiceEndpoints(
        openai_base_url="http://127.0.0.1:9/v1",
        openai_api_key="k",
        deepgram_base_url="http://127.0.0.1:9",
        deepgram_flux_url="ws://127.0.0.1:9/v2/listen",
        deepgram_api_key="k",
        elevenlabs_ws_url="ws://127.0.0.1:9",
        elevenlabs_api_key="k",
    )
    bot = build_bot_pipeline(
        BotPipelineConfig(system=system, endpoints=endpoints, warm=False),
        transport_input=FrameProcessor(),
        transport_output=FrameProcessor(),
    )
    try:
        speculative = system.is_plugin
        assert isinstance(bot.llm, OpenAILLMService)
        assert isinstance(bot.llm, SpeculativeOpenAILLMService) == speculative
        assert (bot.strategy is not None) == speculative
        flux = system == SystemKind.EAGER_FLUX
        assert isinstance(bot.stt, DeepgramFluxSTTService if flux else DeepgramSTTService)
        assert bot.warm_available is False
        assert isinstance(bot.tts, WarmElevenLabsTTSService) == speculative
        assert isinstance(bot.stt, WarmDeepgramSTTService) == speculative
        if speculative and warm_llm_available():
            assert bot.llm.warm is False  # --no-warm reaches the service
        tts_held = system == SystemKind.SPECULATIVE_TTS
        gates = [p for p in bot.pipeline.processors if isinstance(p, SpeculativeOutputGate)]
        assert len(gates) == (1 if tts_held else 0)
        assert isinstance(bot.tts, SpeculativeTTSMixin) == tts_held
        if tts_held:
            assert bot.strategy.planner.params.ready_stage is SpeculationStage.FIRST_AUDIO
    finally:
        await bot.close()


def record(turn: int, anchor_unix: float, commit_ms: float, answers: int = 1) -> TurnRecord:
    return TurnRecord(
        session_id="s",
        turn=turn,
        anchor_unix=anchor_unix,
        moments_ms={"commit": commit_ms, "bot_started_speaking": commit_ms + 500},
        stages_ms={"total": commit_ms + 500},
        answers=answers,
        speculations=[SpeculationEntry(index=0, outcome="withdrawn")],
        speculations_withdrawn=1,
    )


def test_a_commit_inside_a_pause_the_user_went_on_after_is_a_false_commit():
    scenario = parse_scenario(
        {
            "turns": [
                {"segments": [{"text": "I want to", "pause_after_ms": 900}, "book a room"]},
                {"needs_rag": True, "segments": ["What does it cost?"]},
            ]
        }
    )
    first, second = (render_turn(t, index=i) for i, t in enumerate(scenario.turns))
    p1 = TurnPlayback(first, 0.0, wall_start=100.0)
    p1.segment_end_wall = [100.0 + s.speech_end_secs for s in first.segments]
    p2 = TurnPlayback(second, 20.0, wall_start=120.0)
    p2.segment_end_wall = [120.0 + second.segments[0].speech_end_secs]
    pause_end = p1.segment_end_wall[0]
    result = SessionResult(
        system=SystemKind.STOCK,
        scenario_name="x",
        session_id="s",
        playbacks=[p1, p2],
        records=[
            record(0, pause_end, 600, answers=0),  # committed in the 900 ms pause
            record(1, p1.segment_end_wall[1], 600),
            record(2, p2.segment_end_wall[0], 600),
            # An end of turn predicted on the last word, a few ms before its audio ends.
            record(3, p2.segment_end_wall[0] - 0.55, 500),
        ],
    )

    scored = score_session(result)

    assert [(t.scenario_turn, t.false_commit, t.needs_rag) for t in scored] == [
        (0, True, False),
        (0, False, False),
        (1, False, True),
        (1, False, True),
    ]


def test_the_limit_is_vad_stop_plus_first_sentence_plus_first_audio():
    profile = LatencyProfile.slow()
    limit = limit_ms(profile)
    expected = 0.2 + 0.62 + 9.5 / 13.0 + 0.28
    assert limit["p50"] == pytest.approx(expected * 1000, abs=0.1)
    assert limit["p95"] == limit["p50"]  # no jitter
    jittery = limit_ms(profile.replace(jitter=0.2))
    assert jittery["p95"] > jittery["p50"]


async def test_the_paced_output_takes_as_long_as_the_audio_lasts():
    output = PacedOutputTransport(speed=2.0)
    chunk = OutputAudioRawFrame(audio=b"\x00\x00" * 1600, sample_rate=16000, num_channels=1)
    started = time.monotonic()
    for _ in range(5):  # 5 × 100 ms of audio at 2× speed
        assert await output.write_audio_frame(chunk)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 1.0
    assert output.played_secs == pytest.approx(0.5)
    await asyncio.sleep(0)
