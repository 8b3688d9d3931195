"""The strategy through the real LLMUserAggregator and an LLM service with the real gate."""

from __future__ import annotations

import pytest
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMUserAggregator,
    LLMUserAggregatorParams,
)
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_stop.eager_match_policy import EagerMatchPolicy
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from pipecat_speculative.testing import FakeLLMService, SpeculationAwareFakeLLMService, Timeline
from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.speculation_events import WithdrawalReason
from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams
from pipecat_speculative.turns.speculative_user_turn_stop_strategy import (
    SpeculativeUserTurnStopStrategy,
)

DEBOUNCE = 0.05
COMMIT = 0.35


class Rig:
    def __init__(
        self, *, llm=None, commit=COMMIT, stop_timeout=5.0, aggregator_kw=None, **strategy_kw
    ):
        self.strategy = SpeculativeUserTurnStopStrategy(
            commit_strategy=SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=commit),
            params=strategy_kw.pop(
                "params", SpeculativeTurnParams(debounce=DebounceParams(initial_secs=DEBOUNCE))
            ),
            **strategy_kw,
        )
        self.events: list[tuple[str, object]] = []
        for name in (
            "on_speculation_started",
            "on_speculation_withdrawn",
            "on_speculation_adopted",
            "on_user_turn_committed",
        ):
            self.strategy.add_event_handler(name, self._recorder(name))
        self.context = LLMContext()
        self.aggregator = LLMUserAggregator(
            self.context,
            params=LLMUserAggregatorParams(
                user_turn_strategies=UserTurnStrategies(stop=[self.strategy]),
                user_turn_stop_timeout=stop_timeout,
                **(aggregator_kw or {}),
            ),
        )
        self.llm = llm or SpeculationAwareFakeLLMService()

    def _recorder(self, name):
        async def record(_strategy, item):
            self.events.append((name, item))

        return record

    async def run(self, frames):
        down, _ = await run_test(Pipeline([self.aggregator, self.llm]), frames_to_send=frames)
        return down

    def names(self, name):
        return [item for n, item in self.events if n == name]


def llm_output(frames):
    """The frames that matter for what the user hears, in order."""
    keep = (
        LLMFullResponseStartFrame,
        LLMTextFrame,
        LLMFullResponseEndFrame,
        UserStoppedSpeakingFrame,
    )
    out = []
    for f in frames:
        if isinstance(f, keep):
            out.append(type(f).__name__ + (f":{f.text}" if isinstance(f, LLMTextFrame) else ""))
    return out


def answer(text):
    return [
        "LLMFullResponseStartFrame",
        "LLMTextFrame:ANSWER: ",
        f"LLMTextFrame:{text}",
        "LLMFullResponseEndFrame",
    ]


def user_messages(context):
    return [m["content"] for m in context.messages if m.get("role") == "user"]


async def test_a_finished_sentence_is_answered_by_the_adopted_speculation():
    rig = Rig()
    down = await rig.run(Timeline().say("what's the weather", pause_after_secs=0.6).frames())
    assert llm_output(down) == ["UserStoppedSpeakingFrame", *answer("what's the weather")]
    assert rig.llm.started == [("what's the weather", True)]  # one inference, speculative
    assert [r.adopted for r in rig.names("on_speculation_adopted")] == [True]
    assert user_messages(rig.context) == ["what's the weather"]


async def test_resumed_speech_withdraws_the_speculation_and_nothing_of_it_is_heard():
    rig = Rig(llm=SpeculationAwareFakeLLMService(piece_delay=0.15))
    timeline = (
        Timeline().say("I want", pause_after_secs=0.25).say("a table for two", pause_after_secs=0.9)
    )
    down = await rig.run(timeline.frames())
    assert llm_output(down) == ["UserStoppedSpeakingFrame", *answer("I want a table for two")]
    withdrawn = rig.names("on_speculation_withdrawn")
    assert [r.withdrawal_reason for r in withdrawn] == [WithdrawalReason.RESUMED]
    assert rig.llm.started[0] == ("I want", True)
    assert "I want" not in rig.llm.finished  # stopped, not run to the end
    assert user_messages(rig.context) == ["I want a table for two"]


async def test_a_late_final_transcript_re_speculates_on_the_longer_text():
    rig = Rig()
    timeline = Timeline().say("I want", pause_after_secs=0.0, final_after_stop_secs=-0.05)
    frames = timeline.frames()
    # A second final lands after the speculation on "I want" started (the STT was late).
    from pipecat_speculative.testing import final_transcription as _final

    frames += [SleepFrame(sleep=0.15), _final("a table"), SleepFrame(sleep=0.6)]
    down = await rig.run(frames)
    assert llm_output(down) == ["UserStoppedSpeakingFrame", *answer("I want a table")]
    assert [t for t, _ in rig.llm.started] == ["I want", "I want a table"]
    assert [r.withdrawal_reason for r in rig.names("on_speculation_withdrawn")] == [
        WithdrawalReason.EXTENDED
    ]


class AlwaysMismatch(EagerMatchPolicy):
    """Tolerates any change while speculating, rejects everything at commit."""

    def __init__(self):
        self.committing = False

    def matches(self, eager: str, final: str) -> bool:
        return eager == final and not self.committing


async def test_a_mismatch_at_commit_withdraws_and_answers_the_committed_text():
    policy = AlwaysMismatch()
    rig = Rig(match_policy=policy)

    @rig.strategy.event_handler("on_speculation_started")
    async def _(_s, _r):
        policy.committing = True  # from now on the commit will disagree

    down = await rig.run(Timeline().say("book it", pause_after_secs=0.6).frames())
    assert llm_output(down) == ["UserStoppedSpeakingFrame", *answer("book it")]
    assert rig.llm.started == [("book it", True), ("book it", False)]
    assert [r.withdrawal_reason for r in rig.names("on_speculation_withdrawn")] == [
        WithdrawalReason.MISMATCH
    ]


async def test_a_tool_call_withdrawal_still_gets_the_turn_answered_and_runs_the_tool_once():
    llm = SpeculationAwareFakeLLMService(tool_word="weather")
    calls = []

    async def lookup(params):
        calls.append(params.context is not None)
        await params.result_callback({"ok": True})

    llm.register_function("lookup", lookup)
    rig = Rig(llm=llm)
    await rig.run(Timeline().say("what's the weather", pause_after_secs=0.6).frames())
    assert [s for _, s in llm.started] == [True, False]  # speculative, then the real one
    assert calls == [True]  # the tool ran once, for the committed turn only
    withdrawn = rig.names("on_speculation_withdrawn")
    assert [r.withdrawal_reason for r in withdrawn] == [WithdrawalReason.TOOL_CALL]
    assert rig.strategy.planner.cancel_rate is None  # not counted


async def test_the_watchdog_stop_withdraws_the_open_speculation_and_answers():
    rig = Rig(commit=30.0, stop_timeout=0.4)
    down = await rig.run(Timeline().say("hello", pause_after_secs=1.0).frames())
    out = llm_output(down)
    assert out.count("LLMFullResponseEndFrame") == 1
    assert out[-4:] == answer("hello")
    assert [r.withdrawal_reason for r in rig.names("on_speculation_withdrawn")] == [
        WithdrawalReason.TURN_ENDED
    ]
    assert rig.llm.started == [("hello", True), ("hello", False)]


async def test_a_noise_blip_without_words_keeps_the_speculation():
    rig = Rig()
    down = await rig.run(
        Timeline().say("book it", pause_after_secs=0.7, blip_at_secs=0.12).frames()
    )
    assert llm_output(down) == ["UserStoppedSpeakingFrame", *answer("book it")]
    assert rig.llm.started == [("book it", True)]
    assert rig.names("on_speculation_withdrawn") == []


def speculative_context(text):
    return LLMContextFrame(
        context=LLMContext(messages=[{"role": "user", "content": text}]), speculation=True
    )


def plain_context(text):
    return LLMContextFrame(context=LLMContext(messages=[{"role": "user", "content": text}]))


@pytest.mark.parametrize("aware", [False, True])
async def test_a_withdrawal_while_the_context_is_still_queued(aware):
    """Stock 1.14 lets a withdrawn speculation that was still queued run to the end."""
    cls = SpeculationAwareFakeLLMService if aware else FakeLLMService
    llm = cls(piece_delay=0.1)
    frames = [
        plain_context("earlier"),  # keeps the service busy
        SleepFrame(sleep=0.02),
        speculative_context("I want"),  # queued behind it
        EagerEndOfTurnCancelFrame(),  # withdrawn while queued: a no-op for stock
        speculative_context("I want a table"),
        SleepFrame(sleep=0.5),
        UserStoppedSpeakingFrame(),
        SleepFrame(sleep=0.4),
    ]
    down, _ = await run_test(llm, frames_to_send=frames)
    started = [t for t, _ in llm.started]
    if aware:
        assert started == ["earlier", "I want a table"]
        assert llm.dropped_withdrawn_contexts == 1
    else:
        assert started == ["earlier", "I want", "I want a table"]  # the hazard, reproduced
    texts = [f.text for f in down if isinstance(f, LLMTextFrame)]
    assert texts == ["ANSWER: ", "earlier", "ANSWER: ", "I want a table"]


@pytest.mark.parametrize("aware", [False, True])
async def test_a_turn_started_before_the_previous_commit_still_holds_its_speculation(aware):
    """Turn frames out of order: start(2) reaches the LLM before stop(1).

    A sound right at the commit starts turn 2 while turn 1 is being committed. The gate decides
    from the last turn frame (a stop), so stock 1.14 speaks turn 2's speculation at once, and a
    withdrawal comes too late. Reproduced by the pipeline property test.
    """
    cls = SpeculationAwareFakeLLMService if aware else FakeLLMService
    llm = cls(piece_delay=0.05)
    frames = [
        UserStartedSpeakingFrame(),  # turn 1
        UserStartedSpeakingFrame(),  # turn 2, started while turn 1 was being committed
        UserStoppedSpeakingFrame(),  # turn 1's commit
        SleepFrame(sleep=0.05),
        speculative_context("I table"),  # a speculation in turn 2
        SleepFrame(sleep=0.3),
        EagerEndOfTurnCancelFrame(),  # withdrawn: the user went on
        SleepFrame(sleep=0.1),
    ]
    down, _ = await run_test(llm, frames_to_send=frames)
    texts = [f.text for f in down if isinstance(f, LLMTextFrame)]
    if aware:
        assert texts == []  # held, then discarded with the withdrawal
    else:
        assert texts == ["ANSWER: ", "I table"]  # the hazard, reproduced


def committed_texts(rig):
    return [c.text for c in rig.names("on_user_turn_committed")]


@pytest.mark.parametrize("hold", [True, False])
async def test_a_commit_held_until_the_answer_is_ready_lets_a_hesitant_user_finish(hold):
    # The answer takes ~0.8 s; the user pauses 0.6 s, longer than the 0.35 s commit floor.
    params = SpeculativeTurnParams(
        debounce=DebounceParams(initial_secs=DEBOUNCE), hold_commit_until_ready=hold
    )
    rig = Rig(llm=SpeculationAwareFakeLLMService(piece_delay=0.4), params=params)
    timeline = (
        Timeline().say("I want", pause_after_secs=0.6).say("a table for two", pause_after_secs=1.6)
    )
    down = await rig.run(timeline.frames())
    if hold:
        # Patience was free: the first pause's answer was not ready, so nothing was committed.
        assert committed_texts(rig) == ["I want a table for two"]
        assert llm_output(down) == ["UserStoppedSpeakingFrame", *answer("I want a table for two")]
    else:
        # A fixed floor cuts the user off in the pause.
        assert committed_texts(rig)[0] == "I want"


async def test_the_commit_comes_when_the_held_answer_reports_its_first_sentence():
    rig = Rig(llm=SpeculationAwareFakeLLMService(piece_delay=0.3))
    await rig.run(Timeline().say("what's the weather", pause_after_secs=1.2).frames())
    (record,) = rig.names("on_speculation_adopted")
    (commit,) = rig.names("on_user_turn_committed")
    # Not at the 0.35 s floor: the two 0.3 s pieces of the answer came first.
    assert record.ready_at is not None and commit.committed_at >= record.ready_at
    assert record.ready_at - record.started_at >= 0.6


async def test_speculative_contexts_that_are_never_processed_do_not_pile_up():
    # Contexts an interruption flushes from the queue are never processed, so never popped: the
    # mixin keeps only the newest entries.
    llm = SpeculationAwareFakeLLMService()
    for _ in range(100):
        await llm.queue_frame(LLMContextFrame(context=LLMContext(), speculation=True))
    assert len(llm._speculative_waiting) == 64
