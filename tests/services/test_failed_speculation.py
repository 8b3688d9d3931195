"""A speculation the LLM failed on never leaves the committed turn silent.

Through the real OpenAI service (the speculation-aware one) against the stand-in, with the
stand-in's fault injection: the bot answers the turn exactly once.
"""

from __future__ import annotations

import pytest
from pipecat.frames.frames import ErrorFrame, LLMFullResponseStartFrame, LLMTextFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import run_test

from pipecat_speculative.pipecat_compat import openai_client
from pipecat_speculative.services.speculative_openai_llm_service import SpeculativeOpenAILLMService
from pipecat_speculative.standins.pytest_plugin import STANDIN_API_KEY, STANDIN_LLM_MODEL
from pipecat_speculative.testing import Timeline
from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.speculation_events import WithdrawalReason
from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams
from tests.turns.test_speculative_strategy import Rig, user_messages


@pytest.fixture
async def llm(openai_standin):
    service = SpeculativeOpenAILLMService(
        api_key=STANDIN_API_KEY,
        base_url=f"{openai_standin.base_url}/v1",
        settings=SpeculativeOpenAILLMService.Settings(model=STANDIN_LLM_MODEL),
        warm=False,
    )
    yield service
    await openai_client(service).close()


async def run_turn(llm, *, commit: float, hold: bool = True):
    params = SpeculativeTurnParams(
        debounce=DebounceParams(initial_secs=0.05), hold_commit_until_ready=hold
    )
    rig = Rig(llm=llm, commit=commit, params=params)
    frames = Timeline().say("what's the weather", pause_after_secs=2.0).frames()
    down, up = await run_test(Pipeline([rig.aggregator, llm]), frames_to_send=frames)
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    errors = [f for f in up if isinstance(f, ErrorFrame)]
    return rig, text, errors, down


async def test_a_speculation_that_fails_after_its_commit_is_run_again(llm, openai_standin):
    # The first request and the client's two retries fail: the speculative inference reports its
    # error only after a fixed commit (0.8 s, not held for readiness) adopted it. Stock would
    # release an empty response.
    openai_standin.faults.http_error(500, path="/v1/chat/completions", times=3)
    rig, text, errors, down = await run_turn(llm, commit=0.8, hold=False)
    assert len(errors) == 1 and "500" in errors[0].error
    assert [r.adopted for r in rig.names("on_speculation_adopted")] == [True]
    assert llm.retried_failed_speculations == 1
    assert text.count("You asked: what's the weather") == 1  # answered, once
    assert user_messages(rig.context) == ["what's the weather"]


async def test_a_speculation_that_fails_before_its_commit_is_withdrawn_and_the_commit_answers(
    llm, openai_standin
):
    # The stream is cut before any text: the error reaches the strategy before the commit (1.5 s).
    openai_standin.faults.disconnect(after=0, times=1)
    rig, text, errors, down = await run_turn(llm, commit=1.5)
    assert len(errors) == 1
    withdrawn = rig.names("on_speculation_withdrawn")
    assert [r.withdrawal_reason for r in withdrawn] == [WithdrawalReason.FAILED]
    assert rig.strategy.planner.cancel_rate == 1.0  # counted as a wasted speculation
    assert rig.strategy.debounce.state.samples == 0  # but it says nothing about pauses
    assert llm.retried_failed_speculations == 0  # the commit's own inference answers
    assert text.count("You asked: what's the weather") == 1
    assert sum(isinstance(f, LLMFullResponseStartFrame) for f in down) >= 1


async def test_a_speculation_that_streamed_text_before_failing_is_not_run_again(
    llm, openai_standin
):
    # Cut after a few pieces, once the commit released them: part of it was heard, so running
    # it again would say that part twice. Pipecat's own error handling applies.
    openai_standin.faults.disconnect(after=4, times=1)
    openai_standin.faults.slow_first_byte(1.0, path="/v1/chat/completions", times=1)
    rig, text, errors, _ = await run_turn(llm, commit=0.3, hold=False)
    assert len(errors) == 1
    assert [r.adopted for r in rig.names("on_speculation_adopted")] == [True]
    assert llm.retried_failed_speculations == 0
    assert text and text.count("Happy to help") <= 1  # the cut answer, never a second one


async def test_a_held_commit_does_not_adopt_a_speculation_that_fails_meanwhile(llm, openai_standin):
    # The same failure with the commit held for the answer: the error comes first, the
    # speculation is withdrawn, and the commit's own inference answers.
    openai_standin.faults.http_error(500, path="/v1/chat/completions", times=3)
    rig, text, errors, _ = await run_turn(llm, commit=0.8)
    assert len(errors) == 1
    assert [r.withdrawal_reason for r in rig.names("on_speculation_withdrawn")] == [
        WithdrawalReason.FAILED
    ]
    assert text.count("You asked: what's the weather") == 1
