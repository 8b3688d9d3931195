"""Warm OpenAI connections, proven with the stand-in's connection accounting (not with timings)."""

import socket

import pytest
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.pipecat_compat import openai_client
from pipecat_speculative.services.speculative_openai_llm_service import SpeculativeOpenAILLMService
from pipecat_speculative.services.warmup_report import WarmupKind
from pipecat_speculative.standins import OpenAIStandin
from pipecat_speculative.standins.profile import LatencyProfile

# A connection penalty that is measurable but small; a stream slow enough to withdraw mid-way.
PENALTY_SECS = 0.05


def profile(**overrides) -> LatencyProfile:
    values = {"new_connection_penalty_secs": {"openai": PENALTY_SECS}, "llm_tokens_per_sec": 60.0}
    values.update(overrides)
    return LatencyProfile.instant(**values)


def make_llm(base_url: str, **kwargs) -> SpeculativeOpenAILLMService:
    kwargs.setdefault("health_check_secs", 0.05)
    return SpeculativeOpenAILLMService(
        api_key="test",
        base_url=base_url,
        settings=SpeculativeOpenAILLMService.Settings(model="gpt-4o-mini"),
        **kwargs,
    )


def context(text: str) -> LLMContext:
    return LLMContext(messages=[{"role": "user", "content": text}])


def completions(server: OpenAIStandin):
    return [r for r in server.requests if r.path == "/v1/chat/completions"]


def assert_on_warm_connection(server: OpenAIStandin, record) -> None:
    """The request came on a connection that was open, and warmed, before it started."""
    assert not record.new_connection
    assert record.penalty_secs == 0
    connection = server.connections[record.connection_id]
    assert connection.opened_at < record.started_at
    first = next(r for r in server.requests if r.connection_id == record.connection_id)
    assert first.path == "/v1/models"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_warmup_opens_a_connection_and_a_spare_and_the_first_inference_reuses_one():
    async with OpenAIStandin(profile=profile()) as server:
        seen = []
        llm = make_llm(f"{server.base_url}/v1", warmup_listener=lambda *a: seen.append(a))
        report = await llm.warmup()
        assert report.ok and report.kind is WarmupKind.INITIAL and report.connections == 2
        assert server.stats.connections_accepted == 2
        assert server.stats.requests_by_path["/v1/models"] == 2

        down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context("Hello there"))])

    assert any(isinstance(f, LLMTextFrame) for f in down)
    assert server.stats.connections_accepted == 2  # the inference opened nothing
    assert_on_warm_connection(server, completions(server)[0])
    assert llm.connection_stats.cold_requests == 0
    assert seen == [("openai", report.secs, True)]


async def test_the_pipeline_start_warms_in_the_background_and_an_early_inference_joins_it(
    log_messages,
):
    # The warmup is still connecting when the inference arrives: it rides that connection
    # instead of opening a third one, and StartFrame was not held for the warmup.
    async with OpenAIStandin(
        profile=profile(new_connection_penalty_secs={"openai": 0.3})
    ) as server:
        llm = make_llm(f"{server.base_url}/v1")
        await run_test(llm, frames_to_send=[LLMContextFrame(context("Hello there"))])

    assert server.stats.connections_accepted == 2
    assert_on_warm_connection(server, completions(server)[0])
    stats = llm.connection_stats
    assert stats.requests_on_warming == 1 and stats.cold_requests == 0
    assert [r.kind for r in llm.warmup_reports] == [WarmupKind.INITIAL]
    assert any("OpenAI connection warmed in" in m for m in log_messages)


async def test_stock_service_opens_a_cold_connection_after_a_withdrawn_speculation():
    # The hazard this module exists for, reproduced with Pipecat's own OpenAILLMService.
    async with OpenAIStandin(profile=profile()) as server:
        llm = OpenAILLMService(
            api_key="test",
            base_url=f"{server.base_url}/v1",
            settings=OpenAILLMService.Settings(model="gpt-4o-mini"),
        )
        frames = [
            LLMContextFrame(context("Tell me about the weather in Paris"), speculation=True),
            SleepFrame(0.3),
            EagerEndOfTurnCancelFrame(),
            SleepFrame(0.1),
            LLMContextFrame(context("Tell me about the weather in Paris today")),
        ]
        await run_test(llm, frames_to_send=frames)
        await openai_client(llm).close()

    withdrawn, answer = completions(server)
    assert withdrawn.info["client_disconnected"]
    assert answer.new_connection and answer.penalty_secs == PENALTY_SECS


async def test_the_inference_after_a_withdrawn_speculation_finds_a_warm_connection():
    async with OpenAIStandin(profile=profile()) as server:
        llm = make_llm(f"{server.base_url}/v1")
        await llm.warmup()
        frames = [
            LLMContextFrame(context("Tell me about the weather in Paris"), speculation=True),
            SleepFrame(0.3),
            EagerEndOfTurnCancelFrame(),
            SleepFrame(0.1),
            LLMContextFrame(context("Tell me about the weather in Paris today")),
        ]
        down, _ = await run_test(llm, frames_to_send=frames)

    withdrawn, answer = completions(server)
    assert withdrawn.info["client_disconnected"]
    assert server.connections[withdrawn.connection_id].closed_at is not None
    assert_on_warm_connection(server, answer)
    assert answer.connection_id != withdrawn.connection_id
    assert answer.info["completed"]
    assert any(isinstance(f, LLMFullResponseEndFrame) for f in down)
    stats = llm.connection_stats
    assert stats.connections_lost == 1 and stats.cold_requests == 0
    # The dead connection was replaced in the background: a third connection, never used
    # by an inference.
    assert server.stats.connections_accepted == 3


async def test_repeated_withdrawals_never_put_a_cold_connection_on_the_critical_path():
    async with OpenAIStandin(profile=profile()) as server:
        llm = make_llm(f"{server.base_url}/v1")
        await llm.warmup()
        frames = []
        for i in range(3):
            frames += [
                LLMContextFrame(context(f"Tell me about the weather {i}"), speculation=True),
                SleepFrame(0.3),
                EagerEndOfTurnCancelFrame(),
                # Longer than one connection set-up: the spare is replaced in between.
                SleepFrame(0.2),
            ]
        frames.append(LLMContextFrame(context("Tell me about the weather in Paris")))
        await run_test(llm, frames_to_send=frames)

    records = completions(server)
    assert [r.info["client_disconnected"] for r in records] == [True, True, True, False]
    for record in records:
        assert_on_warm_connection(server, record)
    assert llm.connection_stats.cold_requests == 0


async def test_an_idle_gap_longer_than_the_server_keepalive_triggers_a_rewarm(log_messages):
    async with OpenAIStandin(profile=profile(), keepalive_timeout_secs=0.3) as server:
        seen = []
        llm = make_llm(f"{server.base_url}/v1", warmup_listener=lambda *a: seen.append(a))
        await llm.warmup()
        first_connections = set(server.connections)
        # The server closes idle connections after 0.3 s and the service replaces them (~0.45 s a
        # cycle): the inference comes mid-way through the first replacement's life, not at a
        # cycle boundary where a just-closed connection may not have been found dead yet.
        frames = [SleepFrame(0.6), LLMContextFrame(context("Hello again"))]
        await run_test(llm, frames_to_send=frames)

    # The server closed both idle connections; they were replaced before the inference.
    assert all(server.connections[c].closed_at is not None for c in first_connections)
    assert server.stats.connections_accepted >= 4
    answer = completions(server)[0]
    assert answer.connection_id not in first_connections
    assert_on_warm_connection(server, answer)
    assert llm.connection_stats.connections_expired >= 2
    assert llm.connection_stats.cold_requests == 0
    kinds = [r.kind for r in llm.warmup_reports]
    assert kinds[0] is WarmupKind.INITIAL and WarmupKind.REWARM in kinds
    assert all(ok for _, _, ok in seen) and len(seen) == len(kinds)
    assert any("OpenAI connection warmed in" in m and "re-warm" in m for m in log_messages)


async def test_idle_connections_get_keepalive_pings_and_survive_a_shorter_server_keepalive():
    async with OpenAIStandin(profile=profile(), keepalive_timeout_secs=0.5) as server:
        llm = make_llm(f"{server.base_url}/v1", keepalive_ping_secs=0.2)
        await llm.warmup()
        await run_test(llm, frames_to_send=[SleepFrame(1.2), LLMContextFrame(context("Hi"))])

    assert server.stats.connections_accepted == 2  # pinged, never closed, never replaced
    assert server.stats.requests_by_path["/v1/models"] > 2
    assert_on_warm_connection(server, completions(server)[0])


async def test_a_warmup_against_a_dead_endpoint_fails_soft_within_its_budget(log_messages):
    port = free_port()
    seen = []
    llm = make_llm(
        f"http://127.0.0.1:{port}/v1",
        warmup_timeout_secs=2.0,
        warmup_listener=lambda *a: seen.append(a),
    )
    report = await llm.warmup()
    assert not report.ok and report.connections == 0 and "Connect" in report.error
    assert seen == [("openai", report.secs, False)]
    assert any(m.startswith("WARNING") and "OpenAI warmup failed" in m for m in log_messages)

    # The endpoint comes back: the service works, and warms again when its pipeline starts.
    async with OpenAIStandin(profile=profile(), port=port) as server:
        down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context("Hello"))])

    assert any(isinstance(f, LLMTextFrame) for f in down)
    assert [r.ok for r in llm.warmup_reports] == [False, True]
    assert_on_warm_connection(server, completions(server)[0])


async def test_a_hanging_warmup_is_abandoned_at_its_budget():
    async with OpenAIStandin(profile=profile()) as server:
        server.faults.slow_first_byte(1.0, path="/v1/models", times=None)
        llm = make_llm(f"{server.base_url}/v1", warmup_timeout_secs=0.2)
        report = await llm.warmup()
        server.faults.clear()
        await openai_client(llm).close()
    assert not report.ok and "no answer within 0.2 s" in report.error


async def test_a_one_token_completion_warms_only_when_configured():
    async with OpenAIStandin(profile=profile()) as server:
        llm = make_llm(f"{server.base_url}/v1", warmup_completion=True)
        report = await llm.warmup()
        await openai_client(llm).close()
    assert report.ok and report.connections == 2
    assert server.stats.requests_by_path["/v1/chat/completions"] == 1
    assert server.stats.requests_by_path["/v1/models"] == 1
    assert completions(server)[0].info["finish_reason"] == "length"


async def test_warm_false_is_stock_pipecat():
    async with OpenAIStandin(profile=profile()) as server:
        llm = make_llm(f"{server.base_url}/v1", warm=False)
        assert await llm.warmup() is None and llm.connection_stats is None
        await run_test(llm, frames_to_send=[SleepFrame(0.2), LLMContextFrame(context("Hello"))])
        await openai_client(llm).close()
    assert server.stats.requests_by_path["/v1/models"] == 0
    assert completions(server)[0].new_connection
    assert llm.warmup_reports == []


async def test_more_spares_are_kept_when_asked():
    async with OpenAIStandin(profile=profile()) as server:
        llm = make_llm(f"{server.base_url}/v1", spare_connections=2)
        report = await llm.warmup()
        await openai_client(llm).close()
    assert report.connections == 3 and server.stats.connections_accepted == 3


def test_parameters_are_validated():
    with pytest.raises(ValueError):
        make_llm("http://127.0.0.1:1/v1", spare_connections=-1)
    with pytest.raises(ValueError):
        make_llm("http://127.0.0.1:1/v1", warmup_timeout_secs=0)
    with pytest.raises(ValueError):
        make_llm("http://127.0.0.1:1/v1", keepalive_ping_secs=0)


async def test_a_key_refused_model_listing_fails_the_warmup_but_leaves_warm_connections(
    log_messages,
):
    async with OpenAIStandin(profile=profile()) as server:
        server.faults.http_error(403, path="/v1/models", times=None)
        llm = make_llm(f"{server.base_url}/v1")
        report = await llm.warmup()
        server.faults.clear()
        await run_test(llm, frames_to_send=[LLMContextFrame(context("Hello"))])
    assert not report.ok and report.connections == 2
    assert_on_warm_connection(server, completions(server)[0])
    assert any(m.startswith("ERROR") and "HTTP 403" in m for m in log_messages)


async def test_http2_connections_still_work_against_an_http1_server():
    # The stand-in speaks HTTP/1.1 only: lanes fall back to it; the spares still apply.
    async with OpenAIStandin(profile=profile()) as server:
        llm = make_llm(f"{server.base_url}/v1", http2=True)
        await llm.warmup()
        await run_test(llm, frames_to_send=[LLMContextFrame(context("Hello"))])
    assert_on_warm_connection(server, completions(server)[0])
