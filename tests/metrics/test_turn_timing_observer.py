"""The observer shell: frames in, records out; dedupe, clocks, strategy events, real pipelines."""

from __future__ import annotations

import asyncio
import time

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EagerEndOfTurnCancelFrame,
    EagerTranscriptionFrame,
    EndFrame,
    LLMContextFrame,
    MetricsFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import (
    LLMTokenUsage,
    LLMUsageMetricsData,
    TextAggregationMetricsData,
    TTFBMetricsData,
)
from pipecat.observers.user_bot_latency_observer import UserBotLatencyObserver
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregator,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import EagerUserTurnStrategies, UserTurnStrategies

from pipecat_speculative.metrics import (
    RAG_DONE,
    RAG_START,
    AlertKind,
    TimingMarkFrame,
    TurnTimingObserver,
)
from pipecat_speculative.turns.speculation_events import (
    DebounceChange,
    SpeculationRecord,
    UserTurnCommit,
    WithdrawalReason,
)

from .fakes import FakeLLM, FakeOutput, FakeStrategy, FakeTTS, LLMScript, record_events
from .scripted import Script

METRICS = PipelineParams(enable_metrics=True, enable_usage_metrics=True)


def ttfb(script: Script, value: float) -> MetricsFrame:
    return MetricsFrame(data=[TTFBMetricsData(processor=script.llm.name, value=value)])


def audio(context_id: str, secs: float = 0.5) -> TTSAudioRawFrame:
    return TTSAudioRawFrame(
        audio=b"\x00\x01" * int(16000 * secs),
        sample_rate=16000,
        num_channels=1,
        context_id=context_id,
    )


async def scripted_ordinary_turn(s: Script, *, hops: bool = False):
    """The tracker test's ordinary turn, as frames. ``hops`` repeats every frame at later hops."""
    await s.push(0, VADUserStartedSpeakingFrame())
    await s.vad_stop(1200, seen_ms=1203)
    await s.push(1800, UserStoppedSpeakingFrame())
    context = s.context("what time is it")
    await s.push(1801, context)
    if hops:
        await s.push(1801.5, context, source=s.aggregator, destination=s.llm, first_push=False)
    await s.processed(1802, context)
    await s.push(2402, ttfb(s, 0.6), source=s.llm, destination=s.tts)
    await s.push(
        2900,
        MetricsFrame(data=[TextAggregationMetricsData(processor=s.tts.name, value=0.49)]),
        source=s.tts,
    )
    started = TTSStartedFrame(context_id="c1")
    await s.push(2901, started, source=s.tts)
    first_audio = audio("c1", 1.5)
    await s.push(3150, first_audio, source=s.tts, destination=s.source)
    if hops:
        await s.push(3155, started, source=s.source, destination=s.output, first_push=False)
    await s.push(3160, first_audio, source=s.source, destination=s.output, first_push=False)
    bot_started = BotStartedSpeakingFrame()
    await s.push(3170, bot_started, source=s.output)
    # The upstream half of the broadcast: a different frame, travelling the other way.
    await s.push(
        3170.2, BotStartedSpeakingFrame(), source=s.output, direction=FrameDirection.UPSTREAM
    )
    if hops:
        await s.push(3171, bot_started, source=s.output, destination=s.source, first_push=False)
    await s.push(
        3300,
        MetricsFrame(
            data=[
                LLMUsageMetricsData(
                    processor=s.llm.name,
                    value=LLMTokenUsage(prompt_tokens=200, completion_tokens=30, total_tokens=230),
                )
            ]
        ),
        source=s.llm,
    )
    await s.push(5000, BotStoppedSpeakingFrame(), source=s.output)


async def test_scripted_frames_give_exact_stages_on_the_pipeline_clock():
    s = Script()
    recorded = record_events(s.observer)
    await scripted_ordinary_turn(s)

    (record,) = recorded.records
    assert record.anchor_unix == pytest.approx(1_800_000_001.0)
    # The VAD stop was pushed 3 ms after it was decided: t0 comes from its timestamp.
    assert record.moments_ms["vad_stop"] == 200.0
    assert record.stages_ms["total"] == 2170.0
    assert record.stages_ms["speech_to_llm_start"] == 802.0
    assert record.stages_ms["llm_first_token"] == 600.0
    assert record.stages_ms["first_sentence"] == 498.0
    assert record.stages_ms["llm_to_tts_start"] == 1.0
    assert record.stages_ms["tts_first_audio"] == 249.0
    assert record.stages_ms["playout"] == 20.0
    assert (record.answers, record.audio_secs, record.prompt_tokens) == (1, 1.5, 200)


async def test_frames_seen_at_several_hops_are_counted_once():
    single, repeated = Script(), Script()
    one, many = record_events(single.observer), record_events(repeated.observer)
    await scripted_ordinary_turn(single)
    await scripted_ordinary_turn(repeated, hops=True)
    assert [r.to_dict() | {"session_id": ""} for r in one.records] == [
        r.to_dict() | {"session_id": ""} for r in many.records
    ]


async def test_a_context_rebuilt_on_the_way_is_the_same_inference():
    s = Script()
    recorded = record_events(s.observer)
    aggregator = LLMUserAggregator(LLMContext())
    await s.vad_stop(1200)
    original = s.context("weather?", speculation=True)
    await s.push(1400, original, source=aggregator)
    rebuilt = s.context("weather?", speculation=True)  # RAG inserted a message: new frame
    await s.push(1700, rebuilt, source=s.source, destination=s.llm)
    await s.processed(1701, rebuilt)
    await s.push(2300, UserStoppedSpeakingFrame())
    await s.push(2400, BotStartedSpeakingFrame(), source=s.output)
    await s.push(3000, BotStoppedSpeakingFrame(), source=s.output)
    (record,) = recorded.records
    assert record.speculations_started == 1
    # The 300 ms spent on the way (RAG) show between the speculation start and the LLM start.
    assert (record.speculations[0].started_ms, record.moments_ms["llm_request"]) == (400.0, 701.0)


async def test_a_withdrawal_broadcast_by_the_llm_is_a_tool_call():
    s = Script()
    recorded = record_events(s.observer)
    await s.vad_stop(1200)
    context = s.context("book a table", speculation=True)
    await s.push(1400, context)
    await s.processed(1401, context)
    await s.push(1900, EagerEndOfTurnCancelFrame(), source=s.llm)
    await s.push(
        1900.5, EagerEndOfTurnCancelFrame(), source=s.llm, direction=FrameDirection.UPSTREAM
    )
    await s.push(2000, UserStoppedSpeakingFrame())
    await s.push(3000, EndFrame(), source=s.output)
    (record,) = recorded.records
    (spec,) = record.speculations
    assert (spec.outcome, spec.reason, spec.counts_toward_cancel_rate) == (
        "withdrawn",
        "tool_call",
        False,
    )
    assert s.observer.summary().cancel_rate is None


async def test_rag_marks_are_timed_by_their_push():
    s = Script()
    recorded = record_events(s.observer)
    await s.vad_stop(1200)
    await s.push(1300, UserStoppedSpeakingFrame())
    await s.push(1310, TimingMarkFrame(mark=RAG_START))
    await s.push(1700, TimingMarkFrame(mark=RAG_DONE, detail="3 results"))
    await s.push(3000, EndFrame(), source=s.output)
    (record,) = recorded.records
    assert (record.moments_ms["rag_start"], record.stages_ms["rag"]) == (310.0, 390.0)


async def test_attached_strategy_events_add_reasons_debounce_history_and_committed_text():
    s = Script()
    recorded = record_events(s.observer)
    strategy = FakeStrategy()
    s.observer.attach(strategy)
    await s.vad_stop(1200)
    record = SpeculationRecord(
        id=5, turn=0, text="so I was", started_at=100.4, vad_stopped_at=100.2, delay_secs=0.2
    )
    await strategy.emit("on_speculation_started", record)
    await s.push(1400, s.context("so I was", speculation=True))
    await s.push(1500, VADUserStartedSpeakingFrame())
    await s.push(1600, EagerEndOfTurnCancelFrame())
    record.resolved_at, record.withdrawal_reason = 100.6, WithdrawalReason.RESUMED
    await strategy.emit("on_speculation_withdrawn", record)
    await strategy.emit(
        "on_debounce_changed",
        DebounceChange(
            old_secs=0.2,
            new_secs=0.25,
            reason="cancel rate 60 % > 40 %",
            window_cancel_rate=0.6,
            samples=5,
        ),
    )
    await s.vad_stop(2400)
    await s.push(2800, UserStoppedSpeakingFrame())
    await strategy.emit(
        "on_user_turn_committed",
        UserTurnCommit(turn=0, text="so I was saying", committed_at=101.8, adopted=None),
    )
    await s.push(4000, EndFrame(), source=s.output)
    (turn,) = recorded.records
    (spec,) = turn.speculations
    assert (spec.strategy_id, spec.reason, spec.reason_source, spec.delay_secs) == (
        5,
        "resumed",
        "strategy",
        0.2,
    )
    assert turn.user_text == "so I was saying"
    summary = s.observer.summary()
    assert [(d.old_secs, d.new_secs) for d in summary.debounce_history] == [(0.2, 0.25)]
    assert summary.debounce_secs == 0.25


async def test_attach_refuses_an_object_without_event_handlers():
    with pytest.raises(TypeError):
        TurnTimingObserver(log=False).attach(object())


async def test_a_failed_warmup_raises_an_alert_event():
    s = Script()
    recorded = record_events(s.observer)
    s.observer.record_warmup("ElevenLabsTTSService#0", 0.64, ok=True)
    s.observer.record_warmup("OpenAILLMService#0", 2.0, ok=False)
    await s.push(10, VADUserStartedSpeakingFrame())  # alerts are delivered on the next frame
    assert [a.kind for a in recorded.alerts] == [AlertKind.WARMUP_FAILED]
    assert [w.ok for w in s.observer.summary().warmups] == [True, False]


async def test_slow_stages_raise_alerts_with_their_numbers():
    s = Script()
    recorded = record_events(s.observer)
    await s.vad_stop(1200)
    await s.push(1300, UserStoppedSpeakingFrame())
    context = s.context("hi")
    await s.push(1301, context)
    await s.processed(1302, context)
    await s.push(3000, ttfb(s, 1.698), source=s.llm)
    await s.push(3100, TTSStartedFrame(context_id="c"), source=s.tts)
    await s.push(3700, audio("c"), source=s.tts)
    await s.push(4000, EndFrame(), source=s.output)
    assert sorted((a.kind, a.value) for a in recorded.alerts) == [
        (AlertKind.LLM_FIRST_TOKEN_SLOW, 1698.0),
        (AlertKind.TTS_FIRST_AUDIO_SLOW, 600.0),
    ]


async def test_the_playback_watchdog_closes_the_turn_on_the_injected_clock():
    s = Script(playback_margin_secs=0.5)
    recorded = record_events(s.observer)
    await s.vad_stop(1200)
    await s.push(1300, UserStoppedSpeakingFrame())
    await s.push(1500, audio("c", 1.0), source=s.tts, destination=s.output)
    await s.push(1510, BotStartedSpeakingFrame(), source=s.output)
    s.at(2900)
    await s.observer.check_playback_watchdog()
    assert recorded.records == []
    s.at(3010)  # 1.51 + 1.0 s of audio + 0.5 s margin
    await s.observer.check_playback_watchdog()
    (record,) = recorded.records
    assert record.completion == "playback_watchdog"
    assert record.watchdog_waited_secs == pytest.approx(1.5)


# ------------------------------------------------------------ real pipelines


def real_pipeline(llm_scripts=None):
    return Pipeline([FakeLLM(llm_scripts), FakeTTS(), FakeOutput()])


async def test_a_real_pipeline_turn_agrees_with_pipecats_latency_observer():
    timing = TurnTimingObserver(output_types=(FakeOutput,), log=False)
    recorded = record_events(timing)
    latency = UserBotLatencyObserver()
    measured: list[float] = []

    @latency.event_handler("on_latency_measured")
    async def on_latency(observer, secs):
        measured.append(secs)

    context = LLMContext(messages=[{"role": "user", "content": "what time is it"}])
    await run_test(
        real_pipeline(),
        frames_to_send=[
            VADUserStartedSpeakingFrame(),
            SleepFrame(sleep=0.05),
            VADUserStoppedSpeakingFrame(stop_secs=0.2, timestamp=time.time()),
            UserStoppedSpeakingFrame(),
            LLMContextFrame(context=context),
            SleepFrame(sleep=0.3),
            BotStartedSpeakingFrame(),
            SleepFrame(sleep=0.1),
            BotStoppedSpeakingFrame(),
        ],
        observers=[timing, latency],
        pipeline_params=METRICS,
    )
    (record,) = recorded.records
    (secs,) = measured
    assert record.stages_ms["total"] == pytest.approx(secs * 1000, abs=10.0)
    moments = [
        record.moments_ms[m]
        for m in (
            "vad_stop",
            "commit",
            "llm_request",
            "llm_first_token",
            "first_sentence",
            "tts_request",
            "tts_first_audio",
            "bot_started_speaking",
            "bot_stopped_speaking",
        )
    ]
    assert None not in moments
    assert moments == sorted(moments)
    assert record.answers == 1
    assert (record.prompt_tokens, record.completion_tokens) == (100, 7)
    assert record.tts_characters is not None and record.tts_characters > 0


def speech_timeout_params() -> LLMUserAggregatorParams:
    """Pipecat's user aggregator with a 0.3 s speech timeout."""
    return LLMUserAggregatorParams(
        user_turn_strategies=UserTurnStrategies(
            stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.3)]
        )
    )


def what_time_is_it(tail_secs: float = 0.0) -> list:
    """One user turn (0.3 s speech timeout, then the answer) and the bot speaking 0.1 s."""
    return [
        VADUserStartedSpeakingFrame(),
        SleepFrame(sleep=0.05),
        TranscriptionFrame("what time is it", "user", "t", finalized=True),
        SleepFrame(sleep=0.05),
        VADUserStoppedSpeakingFrame(stop_secs=0.2, timestamp=time.time()),
        SleepFrame(sleep=0.8),  # 0.3 s speech timeout, then the answer
        BotStartedSpeakingFrame(),
        SleepFrame(sleep=0.1),
        BotStoppedSpeakingFrame(),
        *([SleepFrame(sleep=tail_secs)] if tail_secs else []),
    ]


async def test_with_pipecats_user_aggregator_each_turn_is_measured_once():
    aggregator = LLMUserAggregator(LLMContext(), params=speech_timeout_params())
    timing = TurnTimingObserver(output_types=(FakeOutput,), log=False)
    recorded = record_events(timing)
    latency = UserBotLatencyObserver()
    measured: list[float] = []

    @latency.event_handler("on_latency_measured")
    async def on_latency(observer, secs):
        measured.append(secs)

    await run_test(
        Pipeline([aggregator, FakeLLM(), FakeTTS(), FakeOutput()]),
        frames_to_send=what_time_is_it(),
        observers=[timing, latency],
        pipeline_params=METRICS,
    )
    (record,) = recorded.records
    (secs,) = measured
    assert record.stages_ms["total"] == pytest.approx(secs * 1000, abs=10.0)
    assert record.stages_ms["turn_detection"] >= 500  # 0.2 s of VAD silence + 0.3 s timeout
    assert (record.user_text, record.answers, record.speculations_started) == (
        "what time is it",
        1,
        0,
    )


async def test_pipecats_own_flux_eager_path_is_measured_from_frames_alone():
    aggregator = LLMUserAggregator(
        LLMContext(), params=LLMUserAggregatorParams(user_turn_strategies=EagerUserTurnStrategies())
    )
    timing = TurnTimingObserver(output_types=(FakeOutput,), log=False)
    recorded = record_events(timing)
    await run_test(
        Pipeline(
            [aggregator, FakeLLM([LLMScript(ttfb_secs=0.3), LLMScript()]), FakeTTS(), FakeOutput()]
        ),
        frames_to_send=[
            ProposedUserStartedSpeakingFrame(),
            SleepFrame(sleep=0.05),
            EagerTranscriptionFrame("what time", "user", "t"),
            SleepFrame(sleep=0.1),
            EagerEndOfTurnCancelFrame(),  # Flux: TurnResumed
            SleepFrame(sleep=0.05),
            EagerTranscriptionFrame("what time is it", "user", "t"),
            SleepFrame(sleep=0.2),
            TranscriptionFrame("What time is it?", "user", "t", finalized=True),
            ProposedUserStoppedSpeakingFrame(),
            SleepFrame(sleep=0.3),
            BotStartedSpeakingFrame(),
            SleepFrame(sleep=0.1),
            BotStoppedSpeakingFrame(),
        ],
        observers=[timing],
        pipeline_params=METRICS,
    )
    (record,) = recorded.records
    assert record.anchor == "commit"  # no VAD in this pipeline: no t0, and no guess at one
    assert record.stages_ms["total"] is None
    assert [(s.outcome, s.text) for s in record.speculations] == [
        ("withdrawn", "what time"),
        ("adopted", "what time is it"),
    ]
    assert record.speculations[0].ignored_ttfb_ms is not None
    assert record.speculative is True
    assert record.answers == 1


async def test_a_held_speculation_is_timed_from_its_start_in_a_real_pipeline():
    timing = TurnTimingObserver(output_types=(FakeOutput,), log=False)
    recorded = record_events(timing)
    speculative = LLMContextFrame(
        context=LLMContext(messages=[{"role": "user", "content": "weather?"}]), speculation=True
    )
    await run_test(
        real_pipeline([LLMScript(ttfb_secs=0.05)]),
        frames_to_send=[
            VADUserStoppedSpeakingFrame(stop_secs=0.2, timestamp=time.time()),
            speculative,
            SleepFrame(sleep=0.3),  # the gate holds the answer; its TTFB passes
            UserStoppedSpeakingFrame(),
            SleepFrame(sleep=0.2),
            BotStartedSpeakingFrame(),
            BotStoppedSpeakingFrame(),
        ],
        observers=[timing],
        pipeline_params=METRICS,
    )
    (record,) = recorded.records
    assert record.speculative is True
    (spec,) = record.speculations
    assert spec.outcome == "adopted"
    # The first token came before the commit: inference is not "turn detection" here.
    assert record.moments_ms["llm_first_token"] < record.moments_ms["commit"]
    assert record.moments_ms["first_sentence"] > record.moments_ms["commit"]
    assert record.stages_ms["llm_first_token"] == pytest.approx(50, abs=40)
    assert record.answers == 1


async def test_a_withdrawn_speculation_in_a_real_pipeline_ignores_the_bogus_ttfb_and_counts_waste():
    timing = TurnTimingObserver(output_types=(FakeOutput,), log=False)
    recorded = record_events(timing)
    speculative = LLMContextFrame(
        context=LLMContext(messages=[{"role": "user", "content": "so I was"}]), speculation=True
    )
    committed = LLMContextFrame(
        context=LLMContext(messages=[{"role": "user", "content": "so I was thinking"}])
    )
    await run_test(
        real_pipeline(
            [
                LLMScript(ttfb_secs=5.0, prompt_tokens=120, completion_tokens=0),
                LLMScript(ttfb_secs=0.05),
            ]
        ),
        frames_to_send=[
            VADUserStoppedSpeakingFrame(stop_secs=0.2, timestamp=time.time()),
            speculative,
            SleepFrame(sleep=0.15),
            VADUserStartedSpeakingFrame(),
            EagerEndOfTurnCancelFrame(),  # the LLM cancels: usage, then a bogus TTFB
            SleepFrame(sleep=0.1),
            VADUserStoppedSpeakingFrame(stop_secs=0.2, timestamp=time.time()),
            UserStoppedSpeakingFrame(),
            committed,
            SleepFrame(sleep=0.3),
            BotStartedSpeakingFrame(),
            BotStoppedSpeakingFrame(),
        ],
        observers=[timing],
        pipeline_params=METRICS,
    )
    (record,) = recorded.records
    (spec,) = record.speculations
    assert spec.outcome == "withdrawn"
    assert spec.llm_first_token_ms is None
    assert spec.ignored_ttfb_ms is not None
    assert (spec.prompt_tokens, record.wasted_prompt_tokens) == (120, 120)
    assert record.ignored_ttfb == 1
    assert record.speculative is False
    assert record.answers == 1
    summary = timing.summary()
    assert (summary.speculations_withdrawn, summary.ignored_ttfb) == (1, 1)


async def test_the_watchdog_timer_fires_when_playback_never_reports():
    timing = TurnTimingObserver(output_types=(FakeOutput,), log=False, playback_margin_secs=0.05)
    recorded = record_events(timing)
    context = LLMContext(messages=[{"role": "user", "content": "hi"}])
    await run_test(
        real_pipeline([LLMScript(chunks=("Hi.",))]),
        frames_to_send=[
            VADUserStoppedSpeakingFrame(stop_secs=0.2, timestamp=time.time()),
            UserStoppedSpeakingFrame(),
            LLMContextFrame(context=context),
            SleepFrame(sleep=0.2),
            BotStartedSpeakingFrame(),  # and never a BotStoppedSpeakingFrame
            SleepFrame(sleep=0.8),  # 0.2 s of audio + 0.05 s margin, with room for a slow box
        ],
        observers=[timing],
        pipeline_params=METRICS,
    )
    (record,) = recorded.records
    assert record.completion == "playback_watchdog"
    assert timing.summary().playback_watchdog_fired == 1


async def test_an_observer_outside_a_pipeline_ignores_frames_without_a_clock():
    observer = TurnTimingObserver(log=False)
    from pipecat.observers.base_observer import FramePushed

    await observer.on_push_frame(
        FramePushed(
            source=FrameProcessor(),
            destination=FrameProcessor(),
            frame=VADUserStartedSpeakingFrame(),
            direction=FrameDirection.DOWNSTREAM,
            timestamp=0,
        )
    )
    observer.record_rag("start")
    assert observer.summary().turns == 0
    await asyncio.sleep(0)


async def test_the_assistant_context_pushed_after_each_answer_is_not_an_inference():
    # Pipecat's assistant aggregator pushes the updated context downstream after every answer;
    # no LLM runs on it. Counted as an inference, one per answer stayed in the tracker.
    pair = LLMContextAggregatorPair(LLMContext(), user_params=speech_timeout_params())
    timing = TurnTimingObserver(output_types=(FakeOutput,), log=False)
    recorded = record_events(timing)
    # The answer's text ends after its audio (a slow LLM), as behind a paced output.
    slow = LLMScript(chunk_gap_secs=0.4)
    await run_test(
        Pipeline([pair.user(), FakeLLM([slow, slow]), FakeTTS(), FakeOutput(), pair.assistant()]),
        frames_to_send=[*what_time_is_it(tail_secs=1.2), *what_time_is_it(tail_secs=1.2)],
        observers=[timing],
        pipeline_params=METRICS,
    )
    assert len(recorded.records) == 2
    assert [m["role"] for m in pair.assistant().context.messages].count("assistant") == 2
    assert timing._tracker._inferences == {}
    assert timing._tracker._awaiting_llm == []
