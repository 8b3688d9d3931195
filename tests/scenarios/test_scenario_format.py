"""The YAML scenario format: loading, validation errors, the built-in suite."""

import copy
import textwrap

import pytest

from pipecat_speculative.scenarios import (
    BUILTIN_SCENARIO_NAMES,
    ScenarioError,
    SpeechSegment,
    load_builtin_scenario,
    load_builtin_suite,
    load_scenario,
    load_scenarios,
    parse_scenario,
)
from pipecat_speculative.standins.profile import LatencyProfile

VALID = {
    "name": "thinking_aloud",
    "description": "two turns",
    "profile": {"base": "instant", "stt_final_delay_secs": 0.2},
    "gap_after_bot_ms": 700,
    "speaking_rate": 1.1,
    "turns": [
        {"segments": [{"text": "Hello"}]},
        {
            "needs_rag": True,
            "notes": "pauses inside",
            "segments": [
                {"text": "I want the key points", "pause_after_ms": 900},
                "of the document",
            ],
        },
    ],
}


def test_a_valid_scenario_loads_with_every_field():
    scenario = parse_scenario(VALID, source="x.yaml")

    assert scenario.name == "thinking_aloud"
    assert scenario.gap_after_bot_ms == 700
    assert scenario.speaking_rate == 1.1
    assert scenario.turns[0].segments == (SpeechSegment("Hello", 0),)
    assert not scenario.turns[0].needs_rag
    second = scenario.turns[1]
    assert second.needs_rag and second.notes == "pauses inside"
    assert second.segments == (
        SpeechSegment("I want the key points", 900),
        SpeechSegment("of the document", 0),
    )
    assert second.text == "I want the key points of the document"
    profile = scenario.latency_profile()
    assert isinstance(profile, LatencyProfile)
    assert profile.stt_final_delay_secs == 0.2
    assert profile.llm_ttft_secs == 0.0  # from the instant base


def test_defaults_apply_when_optional_fields_are_absent():
    scenario = parse_scenario({"turns": [{"segments": ["Hi"]}]}, default_name="hi")

    assert scenario.name == "hi"
    assert scenario.profile == "reference"
    assert scenario.gap_after_bot_ms == 600
    assert scenario.speaking_rate == 1.0
    assert scenario.latency_profile() == LatencyProfile.reference()


def mutate(path, value):
    data = copy.deepcopy(VALID)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field", "reason"),
    [
        (("turns",), DELETE, "turns", "missing"),
        (("turns",), [], "turns", "non-empty list"),
        (("turns", 0), "Hello", "turns[0]", "expected a mapping"),
        (("turns", 0, "segments"), DELETE, "turns[0].segments", "missing"),
        (("turns", 0, "segments"), [], "turns[0].segments", "non-empty list"),
        (("turns", 0, "segments", 0, "text"), "  ", "turns[0].segments[0].text", "empty"),
        (("turns", 0, "segments", 0, "text"), 3, "turns[0].segments[0].text", "string"),
        (("turns", 1, "segments", 0, "pause_after_ms"), DELETE, "pause_after_ms", "missing"),
        (("turns", 1, "segments", 0, "pause_after_ms"), -5, "pause_after_ms", "between 0"),
        (("turns", 1, "segments", 0, "pause_after_ms"), 0, "pause_after_ms", "> 0"),
        (("turns", 1, "segments", 0, "pause_after_ms"), True, "pause_after_ms", "milliseconds"),
        (("turns", 1, "segments", 0, "pause_after_ms"), 0.5, "pause_after_ms", "milliseconds"),
        (("turns", 1, "segments", 1), {"text": "x", "pause_after_ms": 300}, "segments[1]", "last"),
        (("turns", 1, "segments", 0, "pause_ms"), 300, "segments[0].pause_ms", "unknown field"),
        (("turns", 1, "needs_rag"), "yes", "turns[1].needs_rag", "true or false"),
        (("turns", 1, "notes"), 5, "turns[1].notes", "string"),
        (("turns", 1, "speaker"), "bob", "turns[1].speaker", "unknown field"),
        (("gap_after_bot_ms",), "long", "gap_after_bot_ms", "milliseconds"),
        (("speaking_rate",), 5, "speaking_rate", "between"),
        (("profile",), "medium", "profile", "unknown profile"),
        (("profile",), {"base": "medium"}, "profile.base", "unknown profile"),
        (("profile",), {"stt_delay": 1}, "profile", "unknown latency profile fields"),
        (("profile",), {"llm_ttft_secs": -1}, "profile", ">= 0"),
        (("profile",), 3, "profile", "profile name or a mapping"),
        (("voice",), "joe", "voice", "unknown field"),
    ],
)
def test_each_invalid_field_is_named_in_the_error(path, value, field, reason):
    with pytest.raises(ScenarioError) as error:
        parse_scenario(mutate(path, value), source="bad.yaml")

    message = str(error.value)
    assert message.startswith("bad.yaml: ")
    assert field in error.value.field
    assert reason in message


def test_a_file_loads_and_its_errors_name_the_file(tmp_path):
    good = tmp_path / "greeting.yaml"
    good.write_text(
        textwrap.dedent(
            """
            turns:
              - segments:
                  - {text: "Good morning", pause_after_ms: 400}
                  - text: how are you
            """
        )
    )
    scenario = load_scenario(good)
    assert scenario.name == "greeting"
    assert scenario.source == str(good)
    assert scenario.turns[0].segments[0].pause_after_ms == 400

    bad = tmp_path / "bad.yaml"
    bad.write_text("turns: [ {segments: [ ]} ]\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: turns\[0\]\.segments"):
        load_scenario(bad)

    broken = tmp_path / "broken.yaml"
    broken.write_text("turns: [ {segments: \n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(broken)

    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ScenarioError, match="empty"):
        load_scenario(empty)

    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def test_a_directory_loads_sorted_and_rejects_duplicate_names(tmp_path):
    (tmp_path / "b.yaml").write_text("turns: [{segments: [Bye]}]\n")
    (tmp_path / "a.yml").write_text("turns: [{segments: [Hi]}]\n")
    (tmp_path / "notes.txt").write_text("not a scenario")
    assert [s.name for s in load_scenarios(tmp_path)] == ["a", "b"]

    (tmp_path / "c.yaml").write_text("name: a\nturns: [{segments: [Hi]}]\n")
    with pytest.raises(ScenarioError, match="also the name of"):
        load_scenarios(tmp_path)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ScenarioError, match="no scenario files"):
        load_scenarios(empty)
    with pytest.raises(ScenarioError, match="not a directory"):
        load_scenarios(tmp_path / "missing")


def test_the_builtin_suite_loads_in_order():
    suite = load_builtin_suite()

    assert tuple(s.name for s in suite) == BUILTIN_SCENARIO_NAMES
    for scenario in suite:
        assert scenario.latency_profile() == LatencyProfile.reference()
        assert scenario.source.startswith("<builtin>/")


def test_the_reference_conversation_thinks_aloud_then_asks_a_rag_question():
    scenario = load_builtin_scenario("reference_conversation")

    hello, thinking, question = scenario.turns
    assert hello.text == "Hello"
    assert len(thinking.segments) == 4
    assert thinking.segments[0].text.startswith("I want to memorize the omni dimension document")
    assert thinking.segments[-1].text == "what are the IVR system, what is everything?"
    assert all(600 <= s.pause_after_ms <= 1200 for s in thinking.segments[:-1])
    assert not thinking.needs_rag
    assert question.needs_rag


def test_the_fast_talker_breathes_about_250_ms_inside_utterances():
    scenario = load_builtin_scenario("fast_talker")

    pauses = [s.pause_after_ms for t in scenario.turns for s in t.segments[:-1]]
    assert pauses and all(200 <= p <= 300 for p in pauses)


def test_an_unknown_builtin_name_is_an_error():
    with pytest.raises(ScenarioError, match="no built-in scenario 'nope'"):
        load_builtin_scenario("nope")


def test_the_long_session_is_mostly_fluent_with_a_few_hesitant_turns():
    scenario = load_builtin_scenario("long_session")
    assert len(scenario.turns) >= 14
    hesitant = [t for t in scenario.turns if len(t.segments) > 1]
    assert 2 <= len(hesitant) <= len(scenario.turns) // 3
    assert all(s.pause_after_ms >= 450 for t in hesitant for s in t.segments[:-1])
