"""Design invariants over random whole conversations, on virtual time (hypothesis + looptime).

Wider than ``test_pipeline_invariants``: up to 10 segments of up to 6 words, so several committed
turns and barge-ins per example; the default commit rule (free patience: a held commit released
by the LLM's readiness reports, learned patience); an adaptive debounce that starts at a nonzero
delay and moves within the example; tool calls (one or several in parallel); LLM errors during
speculative and committed inferences; the assistant aggregator, so the context's assistant side is
checked against what was heard. Each example checks:

1. nothing produced for a withdrawn speculation is heard or reaches the context;
2. each committed turn is answered at most once, in order, and the last one in full unless the
   user barged in or its inference failed (with an ``ErrorFrame``);
3. the context holds only committed user text, each followed by at most its heard answer;
4. counters: started = adopted + withdrawn, nothing left open; a tool runs only for a committed
   turn; the debounce moves in bounded steps within its band.

Example counts: ``CONVERSATION_EXAMPLES`` (default 60).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from pipecat.frames.frames import (
    CancelFrame,
    EagerEndOfTurnCancelFrame,
    EagerTranscriptionFrame,
    EndFrame,
    LLMContextFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    UserStartedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame
from pipecat.turns.user_start import ExternalUserTurnStartStrategy
from pipecat.turns.user_stop import EagerUserTurnStopStrategy

from pipecat_speculative.frames import SpeculationStage
from pipecat_speculative.processors import SpeculativeOutputGate
from pipecat_speculative.testing import (
    SpeculationAwareFakeLLMService,
    final_transcription,
    last_user_text,
)
from pipecat_speculative.turns import speculative_turn_strategies
from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.speculation_events import WithdrawalReason
from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams
from tests.turns.conversation import (
    Conversation,
    Heard,
    answer_to,
    assert_context_answers_follow_their_turns,
    assert_context_is_the_conversation,
    assert_speculations_resolved,
    assert_withdrawn_answers_unheard,
    heard_responses,
    loop_clock,
    match_heard_to_turns,
    timeline_of,
)
from tests.turns.speaker import CharTTS, Speaker, SpeculativeCharTTS, spoken_answers

EXAMPLES = int(os.environ.get("CONVERSATION_EXAMPLES", "200"))
# Hypothesis's explain phase reruns a failing example hundreds of times: minutes for a pipeline.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
TOOL_WORD = "weather"


def pipeline_property(examples: int):
    """A pipeline property test: virtual time, room for big example counts, no explain phase."""

    def decorate(test):
        test = settings(
            max_examples=examples,
            deadline=None,
            phases=PHASES,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )(test)
        return pytest.mark.looptime(pytest.mark.timeout(900)(test))

    return decorate


WORDS = ["I", "want", "to", "book", "a", "table", "for", "two", "tonight", TOOL_WORD]
# Commit ceiling (2.5 s after the VAD stop) + the longest learned patience: all settled by then.
TAIL_SECS = 5.0

conversation_segments = st.lists(
    st.fixed_dictionaries(
        {
            "words": st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
            "speech_secs": st.floats(0.05, 1.5),
            "pause_after_secs": st.floats(0.0, 3.0),
            "final_after_stop_secs": st.floats(-0.05, 0.3),
            "interim": st.booleans(),
            "blip_at_secs": st.none() | st.floats(0.02, 1.0),
        }
    ),
    min_size=1,
    max_size=10,
)

debounce_params = st.builds(
    DebounceParams,
    initial_secs=st.floats(0.0, 0.6),
    min_samples=st.integers(1, 4),
    window=st.integers(4, 8),
    step_secs=st.floats(0.02, 0.2),
    target_low=st.just(0.2),
    target_high=st.just(0.4),
)


def check_debounce(conv: Conversation, params: DebounceParams):
    changes = conv.names("on_debounce_changed")
    delay = params.initial_secs
    for change in changes:
        assert change.old_secs == pytest.approx(delay)
        assert params.min_secs <= change.new_secs <= params.max_secs
        assert abs(change.new_secs - change.old_secs) <= params.max_jump_secs + 1e-9
        assert change.new_secs != change.old_secs
        delay = change.new_secs
    assert conv.strategy.debounce.delay_secs == pytest.approx(delay)
    event(f"debounce changes: {min(len(changes), 3)}{'+' if len(changes) >= 3 else ''}")


@pipeline_property(EXAMPLES)
@given(
    segments=conversation_segments,
    debounce=debounce_params,
    piece_delay=st.floats(0.0, 0.8),
    tools=st.none() | st.integers(1, 3),
    tool_delay=st.floats(0.0, 0.5),
    failures=st.dictionaries(st.integers(1, 6), st.integers(0, 1), max_size=3),
)
async def test_conversations_keep_the_invariants(
    segments, debounce, piece_delay, tools, tool_delay, failures
):
    llm = SpeculationAwareFakeLLMService(
        piece_delay=piece_delay,
        tool_word=TOOL_WORD if tools else None,
        tool_calls=tools or 1,
        failures=failures,
    )
    runs: list[str] = []

    async def lookup(params):
        runs.append(last_user_text_of(params.context))
        await asyncio.sleep(tool_delay)
        await params.result_callback({"forecast": "sunny"})

    llm.register_function("lookup", lookup)
    conv = Conversation(
        llm=llm,
        strategies=speculative_turn_strategies(
            params=SpeculativeTurnParams(debounce=debounce), clock=loop_clock
        ),
    )
    down = await conv.run(timeline_of(segments).frames(tail_secs=TAIL_SECS))

    committed = conv.committed
    failed = {text for text, _ in llm.failed}
    assert committed and committed == conv.user_messages, (committed, conv.user_messages)
    heard = heard_responses(conv.tap.frames)
    match_heard_to_turns(heard, committed, failed=failed)
    turn_starts = sum(isinstance(f, UserStartedSpeakingFrame) for f in down)
    last = committed[-1]
    if turn_starts == len(committed) and last not in failed:
        # Nobody barged in after the last commit and nothing failed: heard in full, last.
        assert heard and heard[-1].text == answer_to(last) and heard[-1].completed, heard
    elif turn_starts != len(committed):
        # A sound right after the last commit started a turn of its own (a wordless one).
        assert turn_starts == len(committed) + 1
    heard_texts = [h.text for h in heard]
    assert_withdrawn_answers_unheard(conv, heard_texts)
    assert_context_is_the_conversation(conv, heard_texts)
    assert_speculations_resolved(conv)
    # A tool runs for committed turns only, each of its calls at most once per commit.
    per_turn = Counter(committed)
    for text, count in Counter(runs).items():
        assert count <= (tools or 0) * per_turn[text], (runs, committed)
    check_debounce(conv, debounce)
    event(f"committed turns: {min(len(committed), 4)}{'+' if len(committed) >= 4 else ''}")
    event(f"turns not heard: {min(len(committed) - len(heard), 2)}")
    if runs:
        event("a tool ran")
    if llm.failed:
        event("an inference failed: " + ("speculative" if llm.failed[0][1] else "committed"))


def last_user_text_of(context) -> str:
    return last_user_text(LLMContextFrame(context=context))


# ---------------------------------------------------------------- session end at any point

SESSION_END_EXAMPLES = int(os.environ.get("SESSION_END_EXAMPLES", "150"))


@pipeline_property(SESSION_END_EXAMPLES)
@given(
    segments=conversation_segments,
    delay=st.floats(0.0, 0.4),
    piece_delay=st.floats(0.0, 0.8),
    cut=st.floats(0.0, 1.0),
    after_secs=st.floats(0.0, 1.0),
    end=st.sampled_from([EndFrame, CancelFrame]),
)
async def test_a_session_ending_at_any_point_resolves_every_speculation_and_answers_none_twice(
    segments, delay, piece_delay, cut, after_secs, end
):
    """EndFrame or CancelFrame anywhere: during speech, a held speculation, a held commit, an answer."""
    llm = SpeculationAwareFakeLLMService(piece_delay=piece_delay)
    conv = Conversation(
        llm=llm,
        strategies=speculative_turn_strategies(
            params=SpeculativeTurnParams(debounce=DebounceParams(initial_secs=delay)),
            clock=loop_clock,
        ),
    )
    frames = timeline_of(segments).frames(tail_secs=TAIL_SECS)
    frames = [*frames[: round(cut * len(frames))], SleepFrame(sleep=after_secs), end()]
    await conv.run(frames, send_end_frame=False)

    assert_speculations_resolved(conv)
    committed, turns = conv.committed, conv.user_messages
    # The context holds the committed turns, then at most the words of the turn the session
    # ended in (kept, not answered by the plugin).
    assert turns[: len(committed)] == committed and len(turns) <= len(committed) + 1, (
        committed,
        turns,
    )
    heard = heard_responses(conv.tap.frames)
    match_heard_to_turns(heard, turns)
    heard_texts = [h.text for h in heard]
    assert_withdrawn_answers_unheard(conv, heard_texts)
    assert_context_is_the_conversation(conv, heard_texts)
    # Each turn at most one answer at the LLM: an adopted speculation or one fresh inference.
    fresh = Counter(text for text, speculative in llm.started if not speculative)
    adopted = Counter(r.text for r in conv.names("on_speculation_adopted"))
    for text, count in (fresh + adopted).items():
        assert count <= turns.count(text), (llm.started, turns)
    ended_held = [
        r
        for r in conv.names("on_speculation_withdrawn")
        if r.withdrawal_reason is WithdrawalReason.TURN_ENDED
    ]
    if len(turns) > len(committed) and ended_held and ended_held[-1].text == turns[-1]:
        # The session ended on a held speculation: its turn is kept unanswered, no 2nd inference.
        assert fresh[turns[-1]] <= committed.count(turns[-1]), llm.started
        event("ended on a held speculation")
    event(f"{end.__name__}, turns kept unanswered: {len(turns) - len(committed)}")


# ---------------------------------------------------------------- Flux eager turns

FLUX_EXAMPLES = int(os.environ.get("FLUX_EXAMPLES", "150"))

flux_turns = st.lists(
    st.fixed_dictionaries(
        {
            # Each part is said, then Flux bets on it (EagerEndOfTurn) unless it is None.
            "parts": st.lists(
                st.tuples(
                    st.lists(st.sampled_from(WORDS[:-1]), min_size=1, max_size=4),
                    st.none() | st.floats(0.0, 0.6),  # eager bet this long after the part
                    st.floats(0.0, 0.6),  # then the user goes on (TurnResumed) after this long
                ),
                min_size=1,
                max_size=3,
            ),
            "end_after_secs": st.floats(0.0, 0.8),  # EndOfTurn after the last part
            "final_differs": st.booleans(),  # the final transcript adds a word to the last bet
            # Silence before the next turn. Not zero: with the next StartOfTurn at the very instant
            # of an EndOfTurn, Pipecat 1.14 keeps that next turn open until its stop watchdog
            # (5 s), with or without this plugin; a real user speaks a while before Flux can
            # tell a turn started.
            "gap_after_secs": st.floats(0.05, 2.0),
        }
    ),
    min_size=1,
    max_size=5,
)


def flux_frames(turns) -> list:
    """What Deepgram Flux (listen v2) makes Pipecat's Flux service push, turn by turn."""
    frames: list = []
    for turn in turns:
        frames.append(ProposedUserStartedSpeakingFrame())
        words: list[str] = []
        for i, (part, bet_after, resumed_after) in enumerate(turn["parts"]):
            words += part
            frames.append(SleepFrame(sleep=0.1 * len(part)))
            if bet_after is not None:
                frames += [
                    SleepFrame(sleep=bet_after),
                    EagerTranscriptionFrame(" ".join(words), "u", ""),
                ]
            if i < len(turn["parts"]) - 1:
                frames.append(SleepFrame(sleep=resumed_after))
                if bet_after is not None:
                    frames.append(EagerEndOfTurnCancelFrame())
        if turn["final_differs"]:
            words.append("please")
        frames += [
            SleepFrame(sleep=turn["end_after_secs"]),
            final_transcription(" ".join(words)),
            ProposedUserStoppedSpeakingFrame(),
            SleepFrame(sleep=turn["gap_after_secs"]),
        ]
    frames.append(SleepFrame(sleep=TAIL_SECS))
    return frames


@pipeline_property(FLUX_EXAMPLES)
@given(turns=flux_turns, piece_delay=st.floats(0.0, 0.5))
async def test_flux_eager_turns_keep_the_invariants(turns, piece_delay):
    llm = SpeculationAwareFakeLLMService(piece_delay=piece_delay)
    conv = Conversation(
        llm=llm,
        strategies=speculative_turn_strategies(
            commit=EagerUserTurnStopStrategy(),
            start=[ExternalUserTurnStartStrategy()],
            clock=loop_clock,
        ),
    )
    await conv.run(flux_frames(turns))

    committed = conv.committed
    assert committed == conv.user_messages and len(committed) == len(turns), (
        committed,
        conv.user_messages,
    )
    heard = heard_responses(conv.tap.frames)
    match_heard_to_turns(heard, committed)
    # The last turn, with nobody after it, is answered in full.
    assert heard and heard[-1].text == answer_to(committed[-1]) and heard[-1].completed, heard
    heard_texts = [h.text for h in heard]
    assert_withdrawn_answers_unheard(conv, heard_texts)
    assert_context_is_the_conversation(conv, heard_texts)
    assert_speculations_resolved(conv)
    # Flux bets, the strategy only accounts: one inference per bet, none of its own.
    bets = sum(isinstance(f, EagerTranscriptionFrame) for f in flux_frames(turns))
    assert sum(1 for _, speculative in llm.started if speculative) <= bets
    fresh = Counter(text for text, speculative in llm.started if not speculative)
    adopted = Counter(r.text for r in conv.names("on_speculation_adopted"))
    for text, count in (fresh + adopted).items():
        assert count <= committed.count(text), (llm.started, committed)
    event(f"adopted {min(conv.strategy.planner.adopted, 3)}, turns {len(turns)}")


# ---------------------------------------------------------------- barge-in through a TTS

BARGE_IN_EXAMPLES = int(os.environ.get("BARGE_IN_EXAMPLES", "120"))


@pipeline_property(BARGE_IN_EXAMPLES)
@given(
    segments=conversation_segments,
    piece_delay=st.floats(0.0, 0.5),
    first_audio_secs=st.floats(0.0, 0.5),
    speculative_tts=st.booleans(),
)
async def test_barge_in_through_a_tts_and_an_output_transport(
    segments, piece_delay, first_audio_secs, speculative_tts
):
    """The bot speaks (about 40 ms of audio per character) and the user talks over it.

    With speculative TTS the withdrawn answers are synthesized too; the output gate must keep
    every sound of them from the speaker.
    """
    llm = SpeculationAwareFakeLLMService(piece_delay=piece_delay, speculative_tts=speculative_tts)
    speaker = Speaker()
    if speculative_tts:
        after_llm = [SpeculativeCharTTS(first_audio_secs=first_audio_secs)]
        after_llm += [SpeculativeOutputGate(), speaker]
        stage = SpeculationStage.FIRST_AUDIO
    else:
        after_llm = [CharTTS(first_audio_secs=first_audio_secs), speaker]
        stage = SpeculationStage.FIRST_SENTENCE
    conv = Conversation(
        llm=llm,
        strategies=speculative_turn_strategies(
            params=SpeculativeTurnParams(ready_stage=stage), clock=loop_clock
        ),
        after_llm=after_llm,
    )
    down = await conv.run(timeline_of(segments).frames(tail_secs=TAIL_SECS))

    committed = conv.committed
    assert committed == conv.user_messages, (committed, conv.user_messages)
    spoken = spoken_answers(speaker.heard)
    heard = [Heard(text, completed=not cut) for text, cut in spoken if text]
    match_heard_to_turns(heard, committed)
    turn_starts = sum(isinstance(f, UserStartedSpeakingFrame) for f in down)
    if turn_starts == len(committed):
        assert heard and heard[-1].text == answer_to(committed[-1]), speaker.heard
    # The context's assistant side: what was heard, to the sentence. This TTS reports a sentence
    # as spoken once its audio has played, so an answer cut short is left out (or kept whole if
    # the cut came after its last sound); an answer heard to its end is always there.
    assert_context_answers_follow_their_turns(conv)
    assert keeps_what_was_heard(conv.assistant_texts, heard), (conv.assistant_texts, heard)
    assert_speculations_resolved(conv)
    event(f"speculative TTS: {speculative_tts}, cut answers: {sum(c for t, c in spoken if t)}")


def keeps_what_was_heard(contents: list[str], heard: list[Heard]) -> bool:
    """Whether ``contents`` are heard answers, in order, with every answer heard to its end."""
    if not heard:
        return not contents
    first, rest = heard[0], heard[1:]
    if contents and contents[0] == first.text and keeps_what_was_heard(contents[1:], rest):
        return True
    return not first.completed and keeps_what_was_heard(contents, rest)
