"""Every example builds, and the README quick start runs as written: neither can rot silently."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from pipecat.frames.frames import LLMTextFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.tests.utils import run_test

from pipecat_speculative.testing import Timeline

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


class FakeTransport:
    """Stands in for a Daily / WebRTC transport: input and output pass frames through."""

    def __init__(self):
        self._in, self._out = IdentityFilter(), IdentityFilter()

    def input(self):
        return self._in

    def output(self):
        return self._out


def load(name: str):
    path = EXAMPLES / name
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    for name in ("OPENAI_API_KEY", "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY"):
        monkeypatch.setenv(name, "test")
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    yield
    sys.modules.pop("_plain_bot", None)


def names(pipeline: Pipeline) -> list[str]:
    return [type(p).__name__ for p in pipeline.processors]


def test_every_example_has_a_test():
    tested = {"01_speculation.py", "02_rag.py", "03_warm_services.py", "04_timing_prometheus.py"}
    found = {p.name for p in EXAMPLES.glob("[0-9]*.py")}
    assert found == tested


async def test_speculation_example_builds_with_the_plugin_pieces():
    module = load("01_speculation.py")
    pipeline, observers = module.create_pipeline(FakeTransport())
    assert callable(module.bot)
    assert "TranscriptionGuard" in names(pipeline)
    assert "SpeculativeOpenAILLMService" in names(pipeline)
    aggregator = next(p for p in pipeline.processors if type(p).__name__ == "LLMUserAggregator")
    stop = aggregator._params.user_turn_strategies.stop
    assert type(stop[0]).__name__ == "SpeculativeUserTurnStopStrategy"


async def test_rag_example_builds_on_the_embedded_store(tmp_path):
    module = load("02_rag.py")
    retriever = await module.make_retriever(tmp_path / "store")
    assert len(retriever.store) > 0
    passages = await retriever.retrieve("How much is the Growth plan?", top_k=2)
    assert any("Growth" in p.text for p in passages)
    pipeline, _ = module.create_pipeline(FakeTransport(), retriever)
    assert (
        names(pipeline).index("ParallelRAGProcessor")
        == names(pipeline).index("LLMUserAggregator") + 1
    )
    assert "RAGTranscriptTap" in names(pipeline)


async def test_warm_services_example_builds_warm_services():
    module = load("03_warm_services.py")
    pipeline, _ = module.create_pipeline(FakeTransport())
    got = names(pipeline)
    for name in (
        "WarmDeepgramSTTService",
        "SpeculativeOpenAILLMService",
        "WarmElevenLabsTTSService",
    ):
        assert name in got


async def test_timing_example_serves_prometheus_and_ships_the_dashboard(tmp_path):
    module = load("04_timing_prometheus.py")
    pipeline, observers = module.create_pipeline(FakeTransport(), jsonl=tmp_path / "t.jsonl")
    assert [type(o).__name__ for o in observers] == ["TurnTimingObserver"]
    assert module.GRAFANA_DASHBOARD.is_file()
    assert "pipecat_speculative" in module.PROMETHEUS.exposition()


def readme_quick_start() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_readme_quick_start_runs_as_written_on_the_openai_standin(
    monkeypatch, openai_standin
):
    # The block reads OPENAI_API_KEY; the openai client reads OPENAI_BASE_URL: both point it at
    # the loopback stand-in, the code itself is executed exactly as the README shows it.
    monkeypatch.setenv("OPENAI_BASE_URL", f"{openai_standin.base_url}/v1")
    namespace: dict = {}
    exec(compile(readme_quick_start(), "README.md quick start", "exec"), namespace)
    guard, aggregators, llm = (
        namespace["TranscriptionGuard"](),
        namespace["aggregators"],
        namespace["llm"],
    )
    pipeline = Pipeline([guard, aggregators.user(), llm])
    frames = Timeline().say("what is the weather like", pause_after_secs=2.0).frames()
    down, _ = await run_test(pipeline, frames_to_send=frames, observers=[namespace["timing"]])
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert text, "the quick-start bot did not answer"
    assert [m["content"] for m in namespace["context"].messages if m.get("role") == "user"] == [
        "what is the weather like"
    ]
    await llm._client.close()
