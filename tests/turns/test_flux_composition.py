"""With Deepgram Flux's eager end of turn the strategy composes with Pipecat's own eager path."""

from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    EagerTranscriptionFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    TranscriptionFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMUserAggregator,
    LLMUserAggregatorParams,
)
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_start import ExternalUserTurnStartStrategy
from pipecat.turns.user_stop import EagerUserTurnStopStrategy

from pipecat_speculative.testing import SpeculationAwareFakeLLMService
from pipecat_speculative.turns import WithdrawalReason, speculative_turn_strategies
from tests.turns.test_speculative_strategy import answer, llm_output


def final(text):
    frame = TranscriptionFrame(text, "u", "")
    frame.finalized = True
    return frame


async def run_flux(frames, *, piece_delay=0.05):
    strategies = speculative_turn_strategies(
        commit=EagerUserTurnStopStrategy(), start=[ExternalUserTurnStartStrategy()]
    )
    strategy = strategies.stop[0]
    events = []
    for name in ("on_speculation_started", "on_speculation_withdrawn", "on_speculation_adopted"):

        async def record(_s, item, name=name):
            events.append((name, item.text, item.withdrawal_reason))

        strategy.add_event_handler(name, record)
    context = LLMContext()
    aggregator = LLMUserAggregator(
        context, params=LLMUserAggregatorParams(user_turn_strategies=strategies)
    )
    llm = SpeculationAwareFakeLLMService(piece_delay=piece_delay)
    down, _ = await run_test(Pipeline([aggregator, llm]), frames_to_send=frames)
    return down, llm, events, strategy


async def test_flux_speculates_itself_and_the_strategy_only_accounts_for_it():
    down, llm, events, strategy = await run_flux(
        [
            ProposedUserStartedSpeakingFrame(),
            SleepFrame(sleep=0.05),
            EagerTranscriptionFrame("book a table", "u", ""),
            SleepFrame(sleep=0.2),
            final("book a table"),
            ProposedUserStoppedSpeakingFrame(),
            SleepFrame(sleep=0.3),
        ]
    )
    assert llm.started == [("book a table", True)]  # one bet, not two
    assert llm_output(down) == ["UserStoppedSpeakingFrame", *answer("book a table")]
    assert events == [
        ("on_speculation_started", "book a table", None),
        ("on_speculation_adopted", "book a table", None),
    ]
    assert strategy.planner.started == 1 and strategy.planner.adopted == 1


async def test_flux_turn_resumed_is_accounted_as_a_withdrawal():
    down, llm, events, _ = await run_flux(
        [
            ProposedUserStartedSpeakingFrame(),
            SleepFrame(sleep=0.05),
            EagerTranscriptionFrame("book", "u", ""),
            SleepFrame(sleep=0.05),
            EagerEndOfTurnCancelFrame(),
            SleepFrame(sleep=0.05),
            EagerTranscriptionFrame("book a table", "u", ""),
            SleepFrame(sleep=0.2),
            final("book a table"),
            ProposedUserStoppedSpeakingFrame(),
            SleepFrame(sleep=0.3),
        ]
    )
    assert llm_output(down) == ["UserStoppedSpeakingFrame", *answer("book a table")]
    assert events[0] == ("on_speculation_started", "book", None)
    assert events[1] == ("on_speculation_withdrawn", "book", WithdrawalReason.RESUMED)
    assert events[-1] == ("on_speculation_adopted", "book a table", None)


async def test_a_bet_whose_withdrawal_overtook_it_is_withdrawn_by_the_next_bet():
    # Found by the Flux property test. TurnResumed right behind an EagerEndOfTurn: the cancel (a
    # system frame) overtakes the eager transcript queued in the aggregator, so the bet on
    # "book" starts after its own withdrawal. The next bet used to start beside it, and the
    # commit released both: the user heard the answer to "book" too.
    down, llm, events, strategy = await run_flux(
        [
            ProposedUserStartedSpeakingFrame(),
            SleepFrame(sleep=0.05),
            EagerTranscriptionFrame("book", "u", ""),
            EagerEndOfTurnCancelFrame(),
            SleepFrame(sleep=0.05),
            EagerTranscriptionFrame("book a table", "u", ""),
            SleepFrame(sleep=0.2),
            final("book a table"),
            ProposedUserStoppedSpeakingFrame(),
            SleepFrame(sleep=0.8),
        ],
        piece_delay=0.3,
    )
    assert llm_output(down) == ["UserStoppedSpeakingFrame", *answer("book a table")]
    assert [(name, text) for name, text, _ in events] == [
        ("on_speculation_started", "book"),
        ("on_speculation_withdrawn", "book"),
        ("on_speculation_started", "book a table"),
        ("on_speculation_adopted", "book a table"),
    ]
    assert strategy.planner.started == 2 == strategy.planner.adopted + 1
