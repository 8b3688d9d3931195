"""The record builder's steps, each on its own: moments → stages → speculation entries → waste."""

from __future__ import annotations

from pipecat_speculative.metrics.turn_timeline import (
    _Inference,
    _moments_at,
    _pick_answer,
    _RecordClock,
    _speculation_entries,
    _stages,
    _Turn,
    _waste,
)


def inference(key: int, *, speculative: bool, started_at: float = 10.0, **fields) -> _Inference:
    return _Inference(
        key=key,
        speculative=speculative,
        follow_up=False,
        started_at=started_at,
        text="hi",
        turn=None,
        **fields,
    )


def test_the_clock_measures_from_the_anchor_and_lists_what_it_clamped():
    clock = _RecordClock(anchor_at=10.0)
    assert clock.moment("moment:commit", 10.5) == 500.0
    assert clock.moment("moment:rag_start", 9.9) == 0.0
    assert clock.span("rag", 10.2, 10.1) == 0.0
    assert clock.clamped == {"moment:rag_start": -100.0, "stage:rag": -100.0}


def test_without_an_anchor_every_moment_is_unknown():
    assert _RecordClock(anchor_at=None).moment("moment:commit", 10.5) is None


def test_the_adopted_speculation_answers_and_the_first_audio_speaks():
    withdrawn = inference(0, speculative=True, withdrawn_at=10.3)
    adopted = inference(1, speculative=True, adopted_at=11.0)
    audio = inference(2, speculative=False, tts_first_audio_at=11.5)
    turn = _Turn(inferences=[withdrawn, adopted, audio])
    answer = _pick_answer(turn)
    assert answer.live == [adopted, audio]
    assert (answer.adopted, answer.answer, answer.speaking) == (adopted, adopted, audio)


def test_without_adoption_the_ordinary_inference_answers():
    speculation = inference(0, speculative=True)
    ordinary = inference(1, speculative=False)
    answer = _pick_answer(_Turn(inferences=[speculation, ordinary]))
    assert answer.adopted is None
    assert answer.answer is ordinary
    assert answer.speaking is ordinary


def test_moments_take_llm_times_from_the_answer_and_tts_times_from_the_speaker():
    llm = inference(0, speculative=False, llm_started_at=10.4, first_token_at=10.9)
    tts = inference(1, speculative=False, first_sentence_at=11.0, tts_first_audio_at=11.3)
    turn = _Turn(vad_stop_at=10.2, committed_at=10.8, inferences=[llm, tts])
    answer = _pick_answer(turn)
    at = _moments_at(turn, answer)
    assert (at["vad_stop"], at["commit"]) == (10.2, 10.8)
    assert (at["llm_request"], at["llm_first_token"]) == (10.4, 10.9)
    assert (at["first_sentence"], at["tts_first_audio"]) == (11.0, 11.3)


def test_stages_measured_from_t0_are_unknown_without_it():
    at = dict.fromkeys(
        [
            "commit",
            "rag_start",
            "rag_done",
            "llm_request",
            "llm_first_token",
            "first_sentence",
            "tts_request",
            "tts_first_audio",
            "bot_started_speaking",
            "bot_stopped_speaking",
        ]
    )
    at.update(commit=10.0, llm_request=10.1, llm_first_token=10.6, bot_started_speaking=11.0)
    clock = _RecordClock(anchor_at=10.0)
    stages = _stages(at, None, clock)
    assert stages["llm_first_token"] == 500.0
    assert stages["after_commit"] == 1000.0
    assert stages["total"] is None and stages["turn_detection"] is None
    with_t0 = _stages(at, 9.5, clock)
    assert (with_t0["total"], with_t0["turn_detection"]) == (1500.0, 500.0)


def test_one_entry_per_speculation_with_its_outcome_and_times():
    turn = _Turn(
        inferences=[
            inference(0, speculative=True, spec_index=0, withdrawn_at=10.4),
            inference(1, speculative=False),
            inference(2, speculative=True, spec_index=1, adopted_at=11.0, first_token_at=10.7),
            inference(3, speculative=True, spec_index=2),
        ]
    )
    entries = _speculation_entries(turn, _RecordClock(anchor_at=10.0))
    assert [(e.index, e.outcome) for e in entries] == [
        (0, "withdrawn"),
        (1, "adopted"),
        (2, "open"),
    ]
    assert entries[0].resolved_ms == 400.0
    assert entries[1].llm_first_token_ms == 700.0


def test_waste_counts_withdrawn_speculations_and_those_without_usage():
    turn = _Turn(
        inferences=[
            inference(0, speculative=True, withdrawn_at=10.1, prompt_tokens=40, tts_characters=12),
            inference(1, speculative=True, withdrawn_at=10.2),  # cancelled before its usage chunk
            inference(2, speculative=True, adopted_at=11.0, prompt_tokens=50),
            inference(3, speculative=False, prompt_tokens=60),
        ]
    )
    waste = _waste(turn)
    assert (waste.prompt_tokens, waste.completion_tokens, waste.tts_characters) == (40, 0, 12)
    assert waste.without_usage == 1
