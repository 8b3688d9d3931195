"""The scripted-words core of the Deepgram stand-in: onsets, word release, v1 and Flux decisions."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipecat_speculative.standins.deepgram_flux import FluxOptions, FluxSession, FluxTurnState
from pipecat_speculative.standins.deepgram_listen import (
    ListenV1Options,
    ListenV1Session,
    QueryError,
)
from pipecat_speculative.standins.stt_script import (
    ScriptCursor,
    ScriptSegment,
    ScriptTracker,
    ScriptWord,
    SttScript,
)
from tests.standins.deepgram_audio import SAMPLE_RATE, silence, speech

HELLO = ScriptSegment.from_text("Hello there my friend", 1.0)
HOW = ScriptSegment.from_text("how are you?", 0.6)


def feed(target, pcm: bytes, chunk: int = 640) -> list:
    """Feed audio in chunks: tracker updates for a tracker, messages for a session."""
    out = []
    for i in range(0, len(pcm), chunk):
        if isinstance(target, ScriptTracker):
            out.append(target.feed(pcm[i : i + chunk]))
        else:
            out += target.on_audio(pcm[i : i + chunk])
    return out


def test_words_are_released_when_their_audio_has_arrived_and_anchored_at_the_onset():
    tracker = ScriptTracker(ScriptCursor(SttScript.of([HELLO])), 16000)

    updates = feed(tracker, silence(0.5) + speech(0.6))
    heard = [w for u in updates for w in u.words]
    assert [u for up in updates for u in up.onsets] == [pytest.approx(0.5)]
    assert [w.word.text for w in heard] == ["Hello", "there"]
    assert heard[1].end_secs == pytest.approx(1.0)
    assert tracker.speaking and tracker.silence_secs() is None

    heard += [w for u in feed(tracker, speech(0.4) + silence(0.3)) for w in u.words]
    assert [w.word.text for w in heard] == ["Hello", "there", "my", "friend"]
    assert not tracker.speaking
    assert tracker.silence_secs() == pytest.approx(0.3)


def test_a_pause_inside_a_segment_is_not_an_onset_and_the_next_segment_waits_for_one():
    tracker = ScriptTracker(ScriptCursor(SttScript.of([HELLO, HOW])), 16000)
    # A 0.3 s hole in the middle of the first segment (a comma) and speech longer than scripted.
    pcm = speech(0.5) + silence(0.3) + speech(0.2) + speech(0.3) + silence(0.05) + speech(0.2)
    onsets = [o for u in feed(tracker, pcm) for o in u.onsets]
    # Only the first onset: the rest of the audio is the first segment or has no silence before.
    assert onsets == [0.0]
    onsets = [o for u in feed(tracker, silence(0.2) + speech(0.6)) for o in u.onsets]
    assert onsets == [pytest.approx(1.75)]


def test_a_connection_that_replaces_a_dropped_one_needs_silence_before_an_onset():
    cursor = ScriptCursor(SttScript.of([HELLO, HOW]))
    dropped = ScriptTracker(cursor, 16000)
    feed(dropped, speech(0.4))
    assert dropped.close() is True  # dropped mid-segment: its remaining words are lost

    replacement = ScriptTracker(cursor, 16000)
    replacement.require_silence()
    onsets = [
        o for u in feed(replacement, speech(0.6) + silence(0.2) + speech(0.6)) for o in u.onsets
    ]
    assert onsets == [pytest.approx(0.8)]
    assert cursor.next_index == 2


def test_a_segment_with_a_fixed_start_ignores_onsets():
    fixed = ScriptSegment.from_text("right on time", 0.3, start_secs=1.0)
    tracker = ScriptTracker(ScriptCursor(SttScript.of([fixed])), 16000)
    updates = feed(tracker, speech(0.5) + silence(1.0))
    assert [o for u in updates for o in u.onsets] == [pytest.approx(1.0)]
    assert [w.end_secs for u in updates for w in u.words][-1] == pytest.approx(1.3)


def test_segments_validate_their_words():
    with pytest.raises(ValueError, match="monotone"):
        ScriptSegment((ScriptWord("a", 0.5), ScriptWord("b", 0.2)), 1.0)
    with pytest.raises(ValueError, match="within the segment"):
        ScriptSegment((ScriptWord("a", 1.5),), 1.0)
    with pytest.raises(ValueError, match="at least one word"):
        ScriptSegment((), 1.0)
    assert ScriptWord("Points,", 1.0).bare == "points"


@settings(max_examples=40, deadline=None)
@given(
    chunk=st.sampled_from([160, 320, 640, 1600, 8000]),
    pause=st.floats(min_value=0.35, max_value=1.5),
    finalize_after=st.booleans(),
)
def test_every_word_is_final_exactly_once_whatever_the_chunking(chunk, pause, finalize_after):
    session = ListenV1Session(
        ListenV1Options(interim_results=True, punctuate=True),
        ScriptCursor(SttScript.of([HELLO, HOW])),
        interim_interval_secs=0.1,
        endpointing_floor_secs=0.3,
    )
    messages = feed(session, silence(0.2) + speech(1.0) + silence(pause), chunk)
    if finalize_after:
        messages += session.on_finalize()
    messages += feed(session, speech(0.6) + silence(0.1), chunk)
    messages += session.on_finalize()

    finals = [
        m.payload["channel"]["alternatives"][0]["transcript"]
        for m in messages
        if m.payload.get("is_final")
    ]
    words = " ".join(f for f in finals if f).split()
    assert words == "Hello there my friend how are you?".split()
    interims = [m for m in messages if m.kind == "interim"]
    assert interims and all(not m.payload["is_final"] for m in interims)


def test_v1_results_carry_the_fields_pipecat_and_the_sdk_read():
    session = ListenV1Session(ListenV1Options(punctuate=True), ScriptCursor(SttScript.of([HOW])))
    feed(session, speech(0.6))
    (message,) = session.on_finalize()
    payload = message.payload
    assert payload["type"] == "Results" and payload["channel_index"] == [0, 1]
    assert payload["is_final"] and payload["from_finalize"] and not payload["speech_final"]
    assert payload["start"] == 0.0 and payload["duration"] == pytest.approx(0.6)
    alternative = payload["channel"]["alternatives"][0]
    assert alternative["transcript"] == "how are you?"
    assert alternative["words"][-1] == {
        "word": "you",
        "start": pytest.approx(0.4),
        "end": pytest.approx(0.6),
        "confidence": 0.99,
        "punctuated_word": "you?",
    }
    assert set(payload["metadata"]) == {"request_id", "model_info", "model_uuid"}
    assert set(payload["metadata"]["model_info"]) == {"name", "version", "arch"}


def test_v1_sends_speech_started_and_utterance_end_when_asked():
    options = ListenV1Options.from_query(
        {"vad_events": "true", "utterance_end_ms": "1000", "endpointing": "false"}
    )
    session = ListenV1Session(options, ScriptCursor(SttScript.of([HOW])))
    kinds = [m.kind for m in feed(session, silence(0.2) + speech(0.6) + silence(1.2))]
    assert kinds == ["speech_started", "utterance_end"]  # no endpointing: no final on its own
    assert [m.kind for m in session.on_finalize()] == ["finalize"]


def test_v1_rejects_what_it_cannot_transcribe():
    with pytest.raises(QueryError, match="linear16"):
        ListenV1Options.from_query({"encoding": "mulaw"})
    with pytest.raises(QueryError, match="mono"):
        ListenV1Options.from_query({"channels": "2"})
    with pytest.raises(QueryError, match="boolean"):
        ListenV1Options.from_query({"interim_results": "maybe"})
    with pytest.raises(QueryError, match="Flux model"):
        FluxOptions.from_query({"model": "nova-3", "sample_rate": "16000"})


def test_flux_counts_silence_in_received_audio_not_in_time():
    session = FluxSession(
        FluxOptions(eager_eot_threshold=0.5),
        ScriptCursor(SttScript.of([HELLO])),
        eager_eot_secs=0.3,
        eot_secs=0.8,
    )
    feed(session, silence(0.2) + speech(1.0))
    assert session.state is FluxTurnState.SPEAKING  # however long nothing arrives
    events = [m.payload["event"] for m in feed(session, silence(0.3))]
    assert events == ["EagerEndOfTurn"]
    events = [m.payload["event"] for m in feed(session, silence(0.5))]
    assert events == ["EndOfTurn"]
    assert session.state is FluxTurnState.IDLE


def test_a_segment_lost_in_a_drop_is_heard_again_only_from_the_same_audio():
    # A connection hears the onset of "hello there" and drops; the next connection gets that
    # audio again (a client re-sending its buffer): the same words. Other audio: the next words.
    script = SttScript.of(
        [ScriptSegment.from_text("hello there", 0.5), ScriptSegment.from_text("bye now", 0.5)]
    )

    def heard(cursor, lost, pcm):
        tracker = ScriptTracker(cursor, SAMPLE_RATE)
        tracker.require_silence()
        tracker.expect_replay(lost)
        return [w.word.text for w in tracker.feed(pcm).words]

    for pitch, expected in ((0.1, ["hello", "there"]), (0.13, ["bye", "now"])):
        cursor = ScriptCursor(script)
        first = ScriptTracker(cursor, SAMPLE_RATE)
        first.feed(silence(0.2) + speech(0.2))
        lost = [first.lost_segment()]
        assert first.close() and lost[0] is not None and lost[0].index == 0
        assert (
            heard(cursor, lost, silence(0.2) + speech(0.6, pitch=pitch) + silence(0.2)) == expected
        )
