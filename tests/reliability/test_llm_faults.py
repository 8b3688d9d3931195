"""LLM faults through the speculative OpenAI service on the stand-in, in a real pipeline.

Each test drives one fault through user aggregator (with the speculative turn strategy) → LLM →
assistant aggregator and checks what the user gets: the answer once, or a clear error; never a
withdrawn speculation's text; a context that holds only what was said; no hang.

Covered elsewhere: a disconnect or a 5xx during a speculation (tests/services/test_failed_speculation.py).
"""

from __future__ import annotations

import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMAssistantAggregator
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.pipecat_compat import openai_client
from pipecat_speculative.services.speculative_openai_llm_service import SpeculativeOpenAILLMService
from pipecat_speculative.standins.pytest_plugin import STANDIN_API_KEY, STANDIN_LLM_MODEL
from pipecat_speculative.testing import Timeline
from pipecat_speculative.testing.timeline import final_transcription
from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.speculation_events import WithdrawalReason
from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams
from tests.turns.test_speculative_strategy import Rig, user_messages

COMPLETIONS = "/v1/chat/completions"
QUESTION = "what's the weather"
ANSWER = f"You asked: {QUESTION}"


@pytest.fixture
async def make_llm(openai_standin):
    services = []

    def make(**kwargs) -> SpeculativeOpenAILLMService:
        kwargs.setdefault("warm", False)
        service = SpeculativeOpenAILLMService(
            api_key=STANDIN_API_KEY,
            base_url=f"{openai_standin.base_url}/v1",
            settings=SpeculativeOpenAILLMService.Settings(model=STANDIN_LLM_MODEL),
            **kwargs,
        )
        services.append(service)
        return service

    yield make
    for service in services:
        await openai_client(service).close()


class Heard(FrameProcessor):
    """Between the LLM and the assistant aggregator (which consumes the text): what was said."""

    def __init__(self):
        super().__init__()
        self.text = ""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMTextFrame):
            self.text += frame.text
        await self.push_frame(frame, direction)


class Turn:
    """One run of the pipeline and what the user got from it."""

    def __init__(self, rig: Rig, heard: Heard, up: list[Frame]):
        self.rig = rig
        self.text = heard.text
        self.errors = [f.error for f in up if isinstance(f, ErrorFrame)]

    def assistant_messages(self) -> list[str]:
        return [m["content"] for m in self.rig.context.messages if m.get("role") == "assistant"]


async def run_turns(llm, timeline: Timeline, *, commit: float = 0.8, hold: bool = True, tap=None):
    params = SpeculativeTurnParams(
        debounce=DebounceParams(initial_secs=0.05), hold_commit_until_ready=hold
    )
    rig = Rig(llm=llm, commit=commit, params=params)
    heard = Heard()
    processors = [rig.aggregator, llm, heard, *([tap] if tap else [])]
    processors.append(LLMAssistantAggregator(rig.context))
    _, up = await run_test(Pipeline(processors), frames_to_send=timeline.frames())
    return Turn(rig, heard, up)


def one_turn() -> Timeline:
    return Timeline().say(QUESTION, pause_after_secs=1.2)


def completions(server) -> int:
    return sum(r.path == COMPLETIONS for r in server.requests)


async def test_a_429_is_retried_by_the_client_and_the_turn_is_answered(make_llm, openai_standin):
    fault = openai_standin.faults.http_error(429, path=COMPLETIONS, times=2, retry_after_secs=0.01)
    turn = await run_turns(make_llm(), one_turn())
    assert fault.fired == 2 and completions(openai_standin) == 3  # two refusals, then the answer
    assert turn.errors == []
    assert turn.text.count(ANSWER) == 1
    assert user_messages(turn.rig.context) == [QUESTION]
    assert turn.assistant_messages() == [turn.text]


async def test_a_500_is_retried_by_the_client_and_the_turn_is_answered(make_llm, openai_standin):
    openai_standin.faults.http_error(500, path=COMPLETIONS, times=1)
    turn = await run_turns(make_llm(), one_turn())
    assert completions(openai_standin) == 2
    assert turn.errors == [] and turn.text.count(ANSWER) == 1
    assert turn.assistant_messages() == [turn.text]


async def test_a_429_that_never_clears_is_a_clear_error_and_nothing_is_said(
    make_llm, openai_standin, all_logs
):
    # Rate limited for good: the client's two retries, then the held speculation's one retry
    # when its turn is confirmed (a 429 may clear), and the error each time. Bounded, no loop.
    openai_standin.faults.http_error(429, path=COMPLETIONS, times=None, retry_after_secs=0.01)
    llm = make_llm()
    turn = await run_turns(llm, one_turn())
    assert turn.errors and all("429" in e for e in turn.errors)
    assert len(turn.errors) <= 2 and completions(openai_standin) == 3 * len(turn.errors)
    assert turn.text == ""
    assert user_messages(turn.rig.context) == [QUESTION]
    assert turn.assistant_messages() == []  # nothing was said, nothing is remembered as said
    assert any(m.startswith("ERROR") and "429" in m for m in all_logs)


async def test_a_slow_first_byte_past_the_stall_timeout_withdraws_and_the_commit_answers(
    make_llm, openai_standin
):
    # The speculation's request gets no byte for 1.5 s; the 0.2 s budget abandons it, the
    # planner withdraws it as failed, and the commit's own inference (a fast one) answers.
    openai_standin.faults.slow_first_byte(1.5, path=COMPLETIONS, times=1)
    llm = make_llm(stall_timeout_secs=0.2)
    turn = await run_turns(llm, one_turn())
    assert turn.errors == ["LLM completion timeout"]
    assert llm.stalled_completions == 1
    withdrawn = turn.rig.names("on_speculation_withdrawn")
    assert [r.withdrawal_reason for r in withdrawn] == [WithdrawalReason.FAILED]
    assert turn.text.count(ANSWER) == 1
    assert turn.assistant_messages() == [turn.text]


async def test_a_stall_mid_stream_is_bounded_and_the_cut_answer_is_not_repeated(
    make_llm, openai_standin, all_logs
):
    # Two pieces are streamed (and, the commit not held, released), then the server goes
    # silent with the connection open. The budget ends it: an error, not a ten-minute hang;
    # what was said stays said, once; no re-run (part of it was heard).
    fault = openai_standin.faults.stall(3.0, after=2, path=COMPLETIONS)
    llm = make_llm(stall_timeout_secs=0.3)
    turn = await run_turns(llm, one_turn(), commit=0.3, hold=False)
    assert fault.fired == 1 and llm.stalled_completions == 1
    assert turn.errors == ["LLM completion timeout"]
    assert any("sent nothing for 0.3 s after" in m for m in all_logs)
    assert turn.text and llm.retried_failed_speculations == 0
    assert completions(openai_standin) == 1
    assert turn.assistant_messages() == [turn.text]  # only what was streamed before the stall


async def test_the_stall_timeout_can_be_turned_off_and_is_validated(make_llm):
    assert make_llm(stall_timeout_secs=None).stall_timeout_secs is None
    with pytest.raises(ValueError, match="stall_timeout_secs"):
        make_llm(stall_timeout_secs=0)


async def test_a_disconnect_during_a_committed_answer_is_an_error_and_keeps_what_was_said(
    make_llm, openai_standin
):
    # A non-speculative inference (the committed turn's own) cut after three pieces.
    openai_standin.faults.disconnect(after=3, path=COMPLETIONS)
    llm = make_llm()
    context = LLMContext(messages=[{"role": "user", "content": QUESTION}])
    heard = Heard()
    assistant = LLMAssistantAggregator(context)
    _, up = await run_test(
        Pipeline([llm, heard, assistant]), frames_to_send=[LLMContextFrame(context=context)]
    )
    text = heard.text
    errors = [f for f in up if isinstance(f, ErrorFrame)]
    assert len(errors) == 1 and "Error during completion" in errors[0].error
    (record,) = [r for r in openai_standin.requests if r.path == COMPLETIONS]
    assert text and not record.info.get("completed")  # a cut answer, not a whole one
    assert completions(openai_standin) == 1  # not run again: part of it was heard
    assistant_said = [m["content"] for m in context.messages if m.get("role") == "assistant"]
    assert assistant_said == [text]


class _RevokeKeyAfterFirstAnswer(FrameProcessor):
    """Revokes the key at the stand-in once the first answer ended (a key revoked mid-session)."""

    def __init__(self, server):
        super().__init__()
        self._server = server
        self.fault = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMFullResponseEndFrame) and self.fault is None:
            self.fault = self._server.faults.http_error(
                401, path=COMPLETIONS, times=None, message="Incorrect API key provided"
            )
        await self.push_frame(frame, direction)


async def test_a_key_revoked_mid_session_is_a_clear_error_without_a_retry_loop(
    make_llm, openai_standin, all_logs
):
    revoke = _RevokeKeyAfterFirstAnswer(openai_standin)
    llm = make_llm()
    timeline = (
        Timeline().say(QUESTION, pause_after_secs=1.2).say("and tomorrow", pause_after_secs=1.2)
    )
    turn = await run_turns(llm, timeline, tap=revoke)
    assert turn.text.count(ANSWER) == 1  # the first turn was answered
    assert "tomorrow" not in turn.text
    # The turn's speculation is refused and withdrawn as failed; the commit's own inference is
    # refused too. One request each (the client does not retry a 401), no re-run of either.
    assert len(turn.errors) == 2 and all("401" in e for e in turn.errors)
    assert revoke.fault is not None and revoke.fault.fired == 2
    assert llm.retried_failed_speculations == 0
    assert any(m.startswith("ERROR") and "refused for good" in m for m in all_logs)
    assert user_messages(turn.rig.context) == [QUESTION, "and tomorrow"]
    assert turn.assistant_messages() == [turn.text]  # the second turn says nothing


async def test_a_final_arriving_after_the_commit_never_re_answers_the_committed_turn(
    make_llm, openai_standin
):
    # The STT sends one more final for speech it already finalized, 1.5 s after the commit
    # (0.8 s): a late result, no VAD activity around it.
    llm = make_llm()
    frames = [
        *one_turn().frames(),
        final_transcription("in Paris"),
        SleepFrame(1.2),
    ]
    params = SpeculativeTurnParams(debounce=DebounceParams(initial_secs=0.05))
    rig = Rig(llm=llm, commit=0.8, params=params)
    heard = Heard()
    await run_test(
        Pipeline([rig.aggregator, llm, heard, LLMAssistantAggregator(rig.context)]),
        frames_to_send=frames,
    )
    # The committed turn is answered once, and never again with the late words added: those
    # start the next turn, which answers them on their own.
    assert heard.text.count(QUESTION) == 1 and "weather in Paris" not in heard.text
    assert user_messages(rig.context) == [QUESTION, "in Paris"]
    first_answer = next(m for m in rig.context.messages if m.get("role") == "assistant")
    assert ANSWER in first_answer["content"] and "Paris" not in first_answer["content"]
