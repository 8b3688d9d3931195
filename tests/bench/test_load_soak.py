"""The load and soak commands run what they say and report in their schema (figures not asserted).

The load sweep runs a bot process per step against stand-ins in this process; the soak runs one
scripted session through the plugin's real pieces with the stand-ins in a child process. Speed
and memory figures are for the lead's machine, never asserted here.
"""

import io

from rich.console import Console

from pipecat_speculative.load import LoadOptions, load_scenario, run_load, standin_sentences
from pipecat_speculative.pipeline_builder import SystemKind
from pipecat_speculative.scenarios.scenario import parse_scenario
from pipecat_speculative.soak import SOAK_TURN_KINDS, SoakOptions, container_sizes, run_soak
from pipecat_speculative.standins.prerendered_speech import PrerenderedSpeechEngine
from pipecat_speculative.standins.speech_engine import SyntheticSpeechEngine

ONE_TURN = parse_scenario(
    {"name": "one_turn", "gap_after_bot_ms": 300, "turns": [{"segments": ["Hello there"]}]}
)


class CountingEngine(SyntheticSpeechEngine):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def synthesize(self, text, sample_rate):
        self.calls += 1
        return super().synthesize(text, sample_rate)


def test_prerendered_speech_never_synthesizes_after_prerender():
    source = CountingEngine()
    engine = PrerenderedSpeechEngine(source, sample_rate=16000)
    engine.prerender(["Good question, here is what I can say."], words=["You asked: hello there"])
    rendered = source.calls
    assert engine.synthesize("Good question,  here is what I can say.", 16000)
    assembled = engine.synthesize("You asked: hello there, Zyx.", 16000)
    assert source.calls == rendered  # nothing synthesized while timed
    assert assembled  # assembled from the clips, the unknown word as filler
    assert engine.stats() == {"exact": 1, "assembled": 1, "unknown_words": 1, "fallbacks": 0}


def test_the_load_scenario_is_one_conversation_and_its_answers_are_listed():
    scenario = load_scenario([ONE_TURN, ONE_TURN])
    assert len(scenario.turns) == 2
    assert any("hello there" in s.lower() for s in standin_sentences([scenario]))


def test_container_sizes_finds_structures_in_nested_plugin_objects():
    from pipecat_speculative.turns.adaptive_debounce import AdaptiveDebounce

    debounce = AdaptiveDebounce()
    sizes = container_sizes({"d": debounce})
    assert any(path.startswith("d.") for path in sizes)
    assert all(isinstance(v, int) for v in sizes.values())
    assert any("_pauses" in path for path in sizes)  # a deque, found two objects deep


async def test_load_runs_a_bot_process_per_step_and_reports_each_step(tmp_path):
    out = tmp_path / "load.json"
    document = await run_load(
        LoadOptions(
            session_counts=(2,),
            systems=(SystemKind.SPECULATIVE,),
            scenarios=[ONE_TURN],
            json_path=out,
        ),
        Console(file=io.StringIO()),
    )
    assert out.exists()
    assert [s["sessions"] for s in document["steps"]] == [2]
    for step in document["steps"]:
        assert step["user_turns"] == step["sessions"]  # every session played its turn
        assert step["committed_turns"] >= 1
        assert set(step["cpu_per_session"]) == {"bot", "silero", "bot_without_silero", "harness"}
        assert step["cpu_secs"]["bot"] > 0 and step["silero_calls"] > 0
        assert step["rss_mb"]["peak"] >= step["rss_mb"]["before"] > 0
        assert "p95_added_ms" in step and "tts_audio" in step
    assert document["prerender"]["enabled"] and document["prerender"]["words"] >= 2


async def test_soak_plays_every_kind_of_turn_and_reports_checkpoints(tmp_path):
    document = await run_soak(
        SoakOptions(
            turns=15,
            checkpoint_every=5,
            warmup_turns=5,
            out_dir=tmp_path,
            json_path=tmp_path / "soak.json",
            rag=False,
        ),
        Console(file=io.StringIO()),
    )
    assert (tmp_path / "soak.json").exists()
    assert [c["label"] for c in document["checkpoints"]] == [
        "start",
        "warm-up",
        "checkpoint",
        "end",
    ]
    assert sum(document["turn_kinds"].values()) == 15
    assert all(document["turn_kinds"][k] > 0 for k in SOAK_TURN_KINDS)
    assert document["turn_records"] > 0 and document["jsonl_lines"] > document["turn_records"]
    assert document["speculations"]["started"] > 0
    assert document["answers"]["answered_turns"] > 0
    assert document["bot_replies_heard"] > 0
    assert set(document["verdict"]) >= {"flat", "traced_mb_per_1000_turns", "growing_containers"}
