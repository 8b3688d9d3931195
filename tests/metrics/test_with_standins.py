"""The observer against Pipecat's real OpenAI service on the loopback stand-in.

The fakes imitate the service's metrics; this checks the imitation where it matters: a cancelled
speculative stream really emits the bogus TTFB (and no usage: the stand-in, like OpenAI, sends
usage only in the final chunk), and a committed answer reports its real usage.
"""

from __future__ import annotations

import time

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EagerEndOfTurnCancelFrame,
    LLMContextFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.metrics import TurnTimingObserver
from pipecat_speculative.standins.profile import LatencyProfile

from .fakes import FakeOutput, FakeTTS, record_events


@pytest.fixture
def latency_profile() -> LatencyProfile:
    # Slow enough to first token that a withdrawal 0.1 s in lands before it.
    return LatencyProfile.instant(llm_ttft_secs=0.4)


def context(text: str, *, speculation: bool = False) -> LLMContextFrame:
    messages = [{"role": "user", "content": text}]
    return LLMContextFrame(context=LLMContext(messages=messages), speculation=speculation)


async def test_a_cancelled_openai_speculation_is_accounted_and_its_bogus_ttfb_ignored(
    standin_openai_llm,
):
    timing = TurnTimingObserver(output_types=(FakeOutput,), log=False)
    recorded = record_events(timing)
    await run_test(
        Pipeline([standin_openai_llm, FakeTTS(), FakeOutput()]),
        frames_to_send=[
            VADUserStoppedSpeakingFrame(stop_secs=0.2, timestamp=time.time()),
            context("what is the", speculation=True),
            SleepFrame(sleep=0.1),
            VADUserStartedSpeakingFrame(),
            EagerEndOfTurnCancelFrame(),
            SleepFrame(sleep=0.1),
            VADUserStoppedSpeakingFrame(stop_secs=0.2, timestamp=time.time()),
            UserStoppedSpeakingFrame(),
            context("what is the weather like"),
            SleepFrame(sleep=1.0),
            BotStartedSpeakingFrame(),
            BotStoppedSpeakingFrame(),
        ],
        observers=[timing],
        pipeline_params=PipelineParams(enable_metrics=True, enable_usage_metrics=True),
    )
    (record,) = recorded.records
    (spec,) = record.speculations
    assert spec.outcome == "withdrawn"
    assert spec.ignored_ttfb_ms is not None and spec.ignored_ttfb_ms < 400
    assert spec.llm_first_token_ms is None
    # Cancelled before its final chunk, the stream reported no usage: unknown, not 0.
    assert spec.prompt_tokens is None
    assert (record.wasted_prompt_tokens, record.withdrawn_without_usage) == (0, 1)
    assert record.ignored_ttfb == 1
    assert record.stages_ms["llm_first_token"] >= 400
    assert record.prompt_tokens is not None and record.completion_tokens
    assert record.answers == 1


async def test_an_ordinary_turn_through_real_openai_and_elevenlabs_services_is_fully_timed(
    standin_openai_llm, standin_elevenlabs_tts
):
    timing = TurnTimingObserver(output_types=(FakeOutput,), log=False)
    recorded = record_events(timing)
    await run_test(
        Pipeline([standin_openai_llm, standin_elevenlabs_tts, FakeOutput()]),
        frames_to_send=[
            VADUserStoppedSpeakingFrame(stop_secs=0.2, timestamp=time.time()),
            UserStoppedSpeakingFrame(),
            context("what is the weather like"),
            SleepFrame(sleep=1.5),
            BotStartedSpeakingFrame(),
            BotStoppedSpeakingFrame(),
        ],
        observers=[timing],
        pipeline_params=PipelineParams(enable_metrics=True, enable_usage_metrics=True),
    )
    (record,) = recorded.records
    chain = [
        "vad_stop",
        "commit",
        "llm_request",
        "llm_first_token",
        "first_sentence",
        "tts_request",
        "tts_first_audio",
        "bot_started_speaking",
    ]
    moments = [record.moments_ms[m] for m in chain]
    assert None not in moments, dict(zip(chain, moments, strict=True))
    assert moments == sorted(moments)
    assert record.answers == 1
    assert record.prompt_tokens and record.tts_characters
