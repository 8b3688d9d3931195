"""Design invariants under random conversations through real pipelines (hypothesis).

Each example scripts a random turn (segments, pauses, late or early finals, blips), runs it through
the real ``LLMUserAggregator`` with the strategy and an LLM service with the real SpeculationGate,
and checks what came out downstream of the LLM. On virtual time (looptime; the strategy reads the
loop's clock), so the scripted sleeps cost nothing:

1. nothing produced for a withdrawn speculation reaches downstream of the LLM;
2. exactly one answer per committed turn;
3. the context only ever holds committed user text, and the answer heard is the answer to it.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipecat.frames.frames import (
    InterimTranscriptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    UserStartedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame

from pipecat_speculative.testing import SpeculationAwareFakeLLMService, Timeline
from pipecat_speculative.testing import final_transcription as _final
from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.commit_patience import PatienceParams
from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams
from tests.turns.conversation import loop_clock
from tests.turns.test_speculative_strategy import Rig
from tests.turns.test_transcription_guard import GuardedRig

EXAMPLES = int(os.environ.get("PIPELINE_EXAMPLES", "120"))
HOSTILE_EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "40"))
WORDS = ["I", "want", "to", "book", "a", "table", "for", "two", "tonight", "please"]

segments = st.lists(
    st.fixed_dictionaries(
        {
            "words": st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
            "speech_secs": st.floats(0.03, 0.12),
            "pause_after_secs": st.floats(0.0, 0.3),
            "final_after_stop_secs": st.floats(-0.03, 0.12),
            "interim": st.booleans(),
            "blip_at_secs": st.none() | st.floats(0.02, 0.15),
        }
    ),
    min_size=1,
    max_size=3,
)


def params(debounce: float) -> SpeculativeTurnParams:
    """The strategy's defaults, but patience fixed at the commit rule's floor.

    A learned patience may hold the last commit past the end of the scripted session; the
    session's end then writes the pending text without a commit, which these tests would read
    as a turn committed behind the strategy's back. The planner's property test covers patience.
    """
    return SpeculativeTurnParams(
        debounce=DebounceParams(initial_secs=debounce), patience=PatienceParams(adaptive=False)
    )


def answers(frames):
    """The responses that reached downstream of the LLM, as (text heard, completed)."""
    out: list[list] = []
    for f in frames:
        if isinstance(f, LLMFullResponseStartFrame):
            out.append(["", False])
        elif isinstance(f, LLMTextFrame):
            assert out and not out[-1][1], "text outside a response"
            out[-1][0] += f.text
        elif isinstance(f, LLMFullResponseEndFrame):
            assert out and not out[-1][1], "end without a start"
            out[-1][1] = True
    return [tuple(r) for r in out]


def _answers(text: str, completed: bool, committed: str) -> bool:
    expected = f"ANSWER: {committed}"
    return text == expected if completed else expected.startswith(text)


def assert_answers_follow_commits(heard, committed):
    """Each heard answer answers a committed turn, in order, no turn twice.

    Greedy in-order matching: a completed answer must equal its turn's answer, a cut-short one must
    be a prefix of it (a cut-short "ANSWER: want for" may belong to "want for want book").
    """
    position = 0
    for text, completed in heard:
        while position < len(committed) and not _answers(text, completed, committed[position]):
            position += 1
        assert position < len(committed), (heard, committed)
        position += 1


@pytest.mark.looptime
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    turn=segments,
    debounce=st.floats(0.0, 0.12),
    piece_delay=st.floats(0.0, 0.06),
)
async def test_one_answer_per_committed_turn_and_nothing_withdrawn_is_heard(
    turn, debounce, piece_delay
):
    rig = Rig(
        llm=SpeculationAwareFakeLLMService(piece_delay=piece_delay),
        commit=0.15,
        params=params(debounce),
        clock=loop_clock,
    )
    timeline = Timeline()
    for seg in turn:
        timeline.say(" ".join(seg.pop("words")), **seg)
    timeline.segments[-1].pause_after_secs = 0.0
    down = await rig.run(timeline.frames(tail_secs=0.45))

    committed = [m["content"] for m in rig.context.messages if m.get("role") == "user"]
    heard = answers(down)
    commits = [c.text for c in rig.names("on_user_turn_committed")]
    # A pause longer than the commit delay ends the turn there: one or more committed turns.
    assert committed and commits == committed, (commits, committed)
    # 2 + 3. one answer per committed turn, answering exactly the committed text. When the user
    # speaks again right after a commit, Pipecat's barge-in interrupts that answer (cut short, or
    # cancelled before it started); the turn the user then commits is answered instead. So each
    # heard answer maps, in order, to a committed turn; only the last committed turn is certain
    # to be answered in full; and no turn is answered twice.
    assert_answers_follow_commits(heard, committed)
    turn_starts = sum(isinstance(f, UserStartedSpeakingFrame) for f in down)
    if turn_starts == len(committed):
        # Nobody barged in after the last commit: its answer must have been heard in full.
        assert heard and heard[-1] == (f"ANSWER: {committed[-1]}", True), (heard, committed)
    else:
        # A sound right after the commit started a turn of its own, which interrupted the answer
        # (Pipecat's barge-in; a wordless blip then ends the session with no further answer).
        assert turn_starts == len(committed) + 1
    # 1. nothing from a withdrawn speculation was heard (unless a later one had the same text)
    for record in rig.names("on_speculation_withdrawn"):
        if record.text not in committed:
            assert all(text != f"ANSWER: {record.text}" for text, _ in heard)
    planner = rig.strategy.planner
    assert planner.speculation is None
    assert planner.started == planner.adopted + sum(planner.withdrawn.values())


# ---------------------------------------------------------------- hostile frame orders

HOSTILE_WORDS = ["I", "want", "book", "table", "two", "please"]

hostile_events = st.lists(
    st.one_of(
        st.tuples(st.just("vad_start"), st.floats(0.0, 0.2)),
        st.tuples(st.just("vad_stop"), st.floats(0.0, 0.2)),
        st.tuples(st.just("interim"), st.floats(0.0, 0.2), st.sampled_from(HOSTILE_WORDS)),
        st.tuples(
            st.just("final"),
            st.floats(0.0, 0.2),
            st.lists(st.sampled_from(HOSTILE_WORDS), min_size=1, max_size=2),
        ),
        st.tuples(st.just("sleep"), st.floats(0.0, 0.5)),
    ),
    min_size=1,
    max_size=14,
)


def hostile_frames(script) -> list:
    """Frames in the script's order: VAD pairs only alternate, anything else goes anywhere."""
    frames: list = []
    speaking = False
    for event in script:
        kind, gap = event[0], event[1]
        if gap > 0:
            frames.append(SleepFrame(sleep=gap))
        if kind == "vad_start" and not speaking:
            speaking = True
            frames.append(VADUserStartedSpeakingFrame(start_secs=0.2))
        elif kind == "vad_stop" and speaking:
            speaking = False
            frames.append(VADUserStoppedSpeakingFrame(stop_secs=0.2))
        elif kind == "interim":
            frames.append(InterimTranscriptionFrame(event[2], "u", ""))
        elif kind == "final":
            frames.append(_final(" ".join(event[2])))
    if speaking:
        frames.append(VADUserStoppedSpeakingFrame(stop_secs=0.2))
    frames.append(SleepFrame(sleep=1.6))
    return frames


@pytest.mark.looptime
@pytest.mark.timeout(900)
@settings(
    max_examples=HOSTILE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(script=hostile_events, debounce=st.floats(0.0, 0.1), piece_delay=st.floats(0.0, 0.05))
async def test_hostile_frame_orders_lose_no_words_and_answer_each_commit_at_most_once(
    script, debounce, piece_delay
):
    """Transcripts without VAD, VAD without words, finals before and after their VAD stop.

    Through the transcription guard, the real aggregator (the controller's watchdog at 1 s) and
    the real gate. Pipecat's empty-turn recovery is off: it runs the LLM on a developer prompt for
    a wordless turn that interrupted the bot, which the fake would answer like the last user turn.
    """
    rig = GuardedRig(
        llm=SpeculationAwareFakeLLMService(piece_delay=piece_delay),
        commit=0.15,
        stop_timeout=1.0,
        aggregator_kw={"empty_user_turn": None},
        params=params(debounce),
        clock=loop_clock,
    )
    down = await rig.run(hostile_frames(script))

    committed = [m["content"] for m in rig.context.messages if m.get("role") == "user"]
    assert [c.text for c in rig.names("on_user_turn_committed")] == committed
    assert_answers_follow_commits(answers(down), committed)
    planner = rig.strategy.planner
    assert planner.speculation is None
    assert planner.started == planner.adopted + sum(planner.withdrawn.values())
    # No word lost: every final transcript's words are in a committed turn or still pending.
    said = sum(len(e[2]) for e in script if e[0] == "final")
    assert sum(len(c.split()) for c in committed) + len(planner.text.split()) == said
