"""LatencyProfile: calibrated defaults, validation, files, jitter."""

import json

import pytest

from pipecat_speculative.standins.profile import LatencyProfile


def test_reference_defaults_follow_the_design_table():
    p = LatencyProfile.reference()
    assert p.tts_first_audio_secs == pytest.approx(0.28)
    assert p.new_connection_penalty_secs["openai"] == pytest.approx(0.76)
    # Cold ElevenLabs first audio ≈ 0.64 s in the reference: handshake + warm first audio.
    cold = p.new_connection_penalty_secs["elevenlabs"] + p.tts_first_audio_secs
    assert cold == pytest.approx(0.63, abs=0.02)
    assert 0.39 <= p.rag_query_secs <= 0.6
    assert p.stt_final_delay_secs == pytest.approx(0.15)
    assert 59 <= p.llm_tokens_per_sec <= 77


def _first_sentence_secs(p: LatencyProfile) -> float:
    opener = "Sure, here is the short answer to that."
    first_piece = "Sure,"
    return p.llm_ttft_secs + (len(opener) - len(first_piece)) / 4 / p.llm_tokens_per_sec


def test_reference_first_sentence_is_ready_about_half_a_second_after_the_request():
    # The reference log: first sentence at +1,294 ms, of which 761 ms was a new connection.
    assert 0.45 <= _first_sentence_secs(LatencyProfile.reference()) <= 0.6


def test_the_three_service_profiles_span_slow_to_fast():
    slow, ref, fast = (LatencyProfile.named(n) for n in ("slow", "reference", "fast"))
    assert _first_sentence_secs(slow) > 1.2
    assert _first_sentence_secs(fast) < 0.3
    assert fast.tts_first_audio_secs == pytest.approx(0.19)
    assert _first_sentence_secs(fast) < _first_sentence_secs(ref) < _first_sentence_secs(slow)


def test_profiles_load_by_name_or_file_and_refuse_anything_else(tmp_path):
    assert LatencyProfile.load("slow") == LatencyProfile.slow()
    (tmp_path / "p.yaml").write_text("base: fast\nrag_query_secs: 0.2\n")
    loaded = LatencyProfile.load(str(tmp_path / "p.yaml"))
    assert loaded.rag_query_secs == 0.2 and loaded.llm_tokens_per_sec == 200
    with pytest.raises(ValueError, match="neither a latency profile name"):
        LatencyProfile.load("medium")
    with pytest.raises(ValueError, match="base must be one of"):
        LatencyProfile.from_dict({"base": "medium"})


def test_instant_profile_has_no_meaningful_delay():
    p = LatencyProfile.instant()
    assert p.llm_ttft_secs == 0
    assert p.connection_penalty("openai") == 0
    assert p.llm_stream_secs(100) < 0.01


def test_instant_profile_takes_overrides():
    p = LatencyProfile.instant(new_connection_penalty_secs={"openai": 0.3})
    assert p.connection_penalty("openai") == 0.3
    assert p.connection_penalty("elevenlabs") == 0.0


@pytest.mark.parametrize(
    "changes",
    [
        {"llm_ttft_secs": -0.1},
        {"llm_tokens_per_sec": 0},
        {"jitter": 1.0},
        {"flux_eager_eot_secs": 0.6, "flux_eot_secs": 0.5},
        {"new_connection_penalty_secs": {"openai": -1}},
        {"rag_query_secs": float("nan")},
    ],
)
def test_invalid_values_are_refused(changes):
    with pytest.raises(ValueError):
        LatencyProfile(**changes)


def test_round_trips_through_json_and_yaml(tmp_path):
    p = LatencyProfile(jitter=0.1, seed=7, llm_ttft_secs=0.5)
    (tmp_path / "p.json").write_text(json.dumps(p.to_dict()))
    assert LatencyProfile.from_file(tmp_path / "p.json") == p
    (tmp_path / "p.yaml").write_text("base: instant\nrag_query_secs: 0.2\n")
    loaded = LatencyProfile.from_file(tmp_path / "p.yaml")
    assert loaded.rag_query_secs == 0.2
    assert loaded.llm_ttft_secs == 0


def test_unknown_fields_in_a_file_are_an_error(tmp_path):
    (tmp_path / "p.yaml").write_text("llm_ttft: 0.2\n")
    with pytest.raises(ValueError, match="llm_ttft"):
        LatencyProfile.from_file(tmp_path / "p.yaml")


def test_jitter_is_reproducible_with_the_same_seed_and_bounded():
    a = LatencyProfile(jitter=0.2, seed=3)
    b = LatencyProfile(jitter=0.2, seed=3)
    da = [a.delay(1.0) for _ in range(50)]
    assert da == [b.delay(1.0) for _ in range(50)]
    assert all(0.8 <= d <= 1.2 for d in da)
    assert len(set(da)) > 1
    assert a.delay(0) == 0
