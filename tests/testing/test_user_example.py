"""The example test of docs/testing.md, verbatim: what a user writes to test their own bot's turns.

Keep it in sync with the doc (the doc test below checks the doc still contains this file's body).
"""

from pathlib import Path

from pipecat.frames.frames import LLMTextFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMUserAggregator,
    LLMUserAggregatorParams,
)
from pipecat.tests.utils import run_test

from pipecat_speculative import TranscriptionGuard, speculative_turn_strategies
from pipecat_speculative.testing import SpeculationAwareFakeLLMService, Timeline


# --8<-- [start:example]
async def test_my_bot_withdraws_when_the_user_goes_on():
    llm = SpeculationAwareFakeLLMService(piece_delay=0.5)  # a slow LLM: withdrawals show
    context = LLMContext()
    user = LLMUserAggregator(
        context, params=LLMUserAggregatorParams(user_turn_strategies=speculative_turn_strategies())
    )
    # "I want" ... pause (the bot speculates) ... "a table for two" (it must withdraw).
    timeline = Timeline().say("I want", pause_after_secs=0.3).say("a table for two")
    down, _ = await run_test(
        Pipeline([TranscriptionGuard(), user, llm]),
        frames_to_send=timeline.frames(tail_secs=3.0),
    )
    heard = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert heard == "ANSWER: I want a table for two"  # nothing of the withdrawn answer
    assert ("I want", True) in llm.started  # it did speculate on the pause
    assert "I want" not in llm.finished  # and the withdrawn inference stopped


# --8<-- [end:example]


def test_the_doc_shows_this_example():
    source = Path(__file__).read_text()
    example = source.split("# --8<-- [start:example]\n", 1)[1].split("\n\n# --8<-- [end:example]")[
        0
    ]
    doc = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()
    assert example.strip() in doc
