"""The OpenAI stand-in against the real openai client and Pipecat's OpenAILLMService."""

import asyncio
import json
import time

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from pipecat.frames.frames import (
    ErrorFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMServiceMetadataFrame,
    LLMTextFrame,
    MetricsFrame,
)
from pipecat.metrics.metrics import LLMUsageMetricsData
from pipecat.pipeline.worker import PipelineParams
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from pipecat_speculative.standins.deterministic_llm import (
    estimate_prompt_tokens,
    estimate_tokens,
    reply_to,
    split_stream_pieces,
)
from pipecat_speculative.standins.openai_server import OpenAIStandin
from pipecat_speculative.standins.profile import LatencyProfile

QUESTION = [{"role": "user", "content": "What is the refund policy?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def client(server, **kwargs) -> AsyncOpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("api_key", "test")
    return AsyncOpenAI(base_url=f"{server.base_url}/v1", **kwargs)


async def test_a_streamed_reply_has_the_openai_sse_shape(openai_standin):
    body = {
        "model": "gpt-4o-mini",
        "messages": QUESTION,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{openai_standin.base_url}/v1/chat/completions",
            json=body,
            headers={"Authorization": "Bearer test"},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas[0]["role"] == "assistant" and deltas[0]["content"] == ""
    pieces = [d["content"] for d in deltas[1:-1]]
    assert "".join(pieces) == reply_to(QUESTION).text
    assert deltas[-1] == {}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == estimate_prompt_tokens(QUESTION)
    assert usage_chunk["usage"]["completion_tokens"] == estimate_tokens(reply_to(QUESTION).text)


async def test_the_openai_client_streams_the_reply_and_its_usage(openai_standin):
    oai = client(openai_standin)
    stream = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    await oai.close()
    assert text == reply_to(QUESTION).text
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert openai_standin.requests[-1].info["completed"] is True


async def test_a_non_streaming_completion_returns_the_same_answer(openai_standin):
    oai = client(openai_standin)
    response = await oai.chat.completions.create(model="gpt-4o", messages=QUESTION)
    await oai.close()
    assert response.choices[0].message.content == reply_to(QUESTION).text
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "gpt-4o"
    assert response.usage.prompt_tokens == estimate_prompt_tokens(QUESTION)


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(openai_standin):
    oai = client(openai_standin)
    response = await oai.chat.completions.create(
        model="gpt-4o", messages=QUESTION, max_completion_tokens=5
    )
    await oai.close()
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens <= 5
    assert reply_to(QUESTION).text.startswith(response.choices[0].message.content)


async def test_tool_calls_stream_as_fragments_and_finish_with_tool_calls(openai_standin):
    oai = client(openai_standin)
    stream = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER],
        stream=True,
    )
    name, args, ids, finish, fragments = "", "", set(), None, 0
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for call in choice.delta.tool_calls or []:
            assert call.index == 0
            fragments += 1
            ids.add(call.id) if call.id else None
            name += call.function.name or ""
            args += call.function.arguments or ""
    await oai.close()
    assert finish == "tool_calls"
    assert name == "get_weather"
    assert json.loads(args) == {"location": "Paris"}
    assert len(ids) == 1 and fragments > 2


async def test_a_non_streaming_tool_call(openai_standin):
    oai = client(openai_standin)
    response = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "weather for Berlin please"}],
        tools=[WEATHER],
    )
    await oai.close()
    call = response.choices[0].message.tool_calls[0]
    assert response.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"location": "Berlin please"},
    )


async def test_models_list_warms_the_connection_without_a_completion(openai_standin):
    oai = client(openai_standin)
    models = await oai.models.list()
    assert "gpt-4o-mini" in [m.id for m in models.data]
    await oai.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    await oai.close()
    assert openai_standin.stats.requests_by_path["/v1/models"] == 1
    assert openai_standin.stats.connections_accepted == 1


async def test_a_wrong_key_is_an_authentication_error():
    async with OpenAIStandin(profile=LatencyProfile.instant(), api_key="secret") as server:
        oai = client(server, api_key="wrong")
        with pytest.raises(openai.AuthenticationError) as info:
            await oai.models.list()
        await oai.close()
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, None),
        (503, openai.InternalServerError, None),
    ],
)
async def test_http_error_faults_raise_the_clients_exception(openai_standin, status, error, code):
    openai_standin.faults.http_error(status, path="/v1/chat/completions")
    oai = client(openai_standin)
    with pytest.raises(error) as info:
        await oai.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
    # The fault was one-shot: the next request succeeds.
    await oai.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    await oai.close()
    assert info.value.status_code == status
    assert info.value.code == code
    assert openai_standin.requests[0].fault == "http_error"


async def test_a_one_shot_429_is_retried_by_the_client(openai_standin):
    openai_standin.faults.http_error(429, retry_after_secs=0.01)
    oai = client(openai_standin, max_retries=1)
    response = await oai.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    await oai.close()
    assert response.choices[0].message.content
    assert [r.status for r in openai_standin.requests] == [429, 200]


async def test_a_slow_first_byte_trips_the_client_timeout(openai_standin):
    openai_standin.faults.slow_first_byte(1.0, path="/v1/chat/completions")
    oai = client(openai_standin, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        await oai.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
    await oai.close()


async def test_a_slow_first_byte_delays_the_response(openai_standin):
    openai_standin.faults.slow_first_byte(0.3)
    oai = client(openai_standin)
    start = time.monotonic()
    await oai.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    elapsed = time.monotonic() - start
    await oai.close()
    assert elapsed >= 0.24


async def test_a_mid_stream_disconnect_is_a_connection_error_after_the_first_pieces(
    openai_standin,
):
    openai_standin.faults.disconnect(after=3)
    oai = client(openai_standin)
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    await oai.close()
    assert "".join(r for r in received if r) == "".join(
        split_stream_pieces(reply_to(QUESTION).text)[:3]
    )


async def test_an_invalid_json_chunk_breaks_the_clients_stream(openai_standin):
    openai_standin.faults.malformed("invalid_json", after=1)
    oai = client(openai_standin)
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
    with pytest.raises(json.JSONDecodeError):
        async for _ in stream:
            pass
    await oai.close()


async def test_a_chunk_missing_its_delta_reaches_the_client(openai_standin):
    openai_standin.faults.malformed("missing_fields", after=1)
    oai = client(openai_standin)
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
    deltas = [chunk.choices[0].delta async for chunk in stream]
    await oai.close()
    assert None in deltas


async def test_a_request_without_messages_is_a_bad_request(openai_standin):
    oai = client(openai_standin)
    with pytest.raises(openai.BadRequestError):
        await oai.chat.completions.create(model="gpt-4o-mini", messages=[])
    await oai.close()


async def test_a_reused_connection_skips_the_new_connection_penalty():
    profile = LatencyProfile.instant(new_connection_penalty_secs={"openai": 0.3})
    async with OpenAIStandin(profile=profile) as server:
        oai = client(server)
        start = time.monotonic()
        await oai.models.list()
        cold = time.monotonic() - start
        await oai.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
        await oai.close()
        other = client(server)
        await other.models.list()
        await other.close()
    assert cold >= 0.8 * 0.3
    first, second, third = server.requests
    assert (first.new_connection, first.penalty_secs) == (True, 0.3)
    assert (second.new_connection, second.penalty_secs) == (False, 0.0)
    assert second.connection_id == first.connection_id
    assert third.new_connection and third.connection_id != first.connection_id
    assert server.stats.connections_accepted == 2
    assert server.stats.penalties_applied == 2


async def test_idle_connections_are_closed_after_the_keepalive_timeout():
    async with OpenAIStandin(
        profile=LatencyProfile.instant(), keepalive_timeout_secs=0.2
    ) as server:
        oai = client(server)
        await oai.models.list()
        await asyncio.sleep(0.6)
        await oai.models.list()
        await oai.close()
    assert server.stats.connections_accepted == 2
    assert [r.new_connection for r in server.requests] == [True, True]


async def test_a_client_that_abandons_a_stream_stops_the_generation():
    # ~55 tokens at 40 tokens/s: about 1.4 s to stream the whole answer.
    async with OpenAIStandin(profile=LatencyProfile.instant(llm_tokens_per_sec=40.0)) as server:
        oai = client(server)
        stream = await oai.chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, stream=True
        )
        count = 0
        async for _ in stream:
            count += 1
            if count == 3:
                break
        await stream.close()
        await oai.close()
        record = server.requests[-1]
        for _ in range(100):
            if record.info["client_disconnected"]:
                break
            await asyncio.sleep(0.02)
    assert record.info["client_disconnected"] is True
    assert record.info["completed"] is False
    assert record.info["completion_tokens_sent"] < record.info["completion_tokens"] / 2


async def test_an_abandoned_stream_costs_the_next_request_a_new_connection(openai_standin):
    # The hazard in the Pipecat notes: httpx cannot reuse a connection whose stream was dropped.
    oai = client(openai_standin)
    await oai.models.list()
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
    async for _ in stream:
        break
    await stream.close()
    await oai.models.list()
    await oai.close()
    assert openai_standin.stats.connections_accepted == 2
    assert [r.new_connection for r in openai_standin.requests] == [True, False, True]


async def test_pipecat_openai_service_streams_the_reply(standin_openai_llm):
    context = LLMContext(messages=QUESTION)
    pieces = split_stream_pieces(reply_to(QUESTION).text)
    down, _ = await run_test(
        standin_openai_llm,
        frames_to_send=[LLMContextFrame(context=context)],
        expected_down_frames=[
            LLMServiceMetadataFrame,
            LLMFullResponseStartFrame,
            *[LLMTextFrame] * len(pieces),
            LLMFullResponseEndFrame,
        ],
    )
    assert [f.text for f in down if isinstance(f, LLMTextFrame)] == pieces


async def test_pipecat_sees_retrieved_passages_in_the_answer(standin_openai_llm):
    # A leading system message is deprecated in Pipecat 1.9+; retrieval rides in the user turn.
    content = "Context:\n[1] Refunds are issued within 30 days.\n\nQuestion: What about refunds?"
    context = LLMContext(messages=[{"role": "user", "content": content}])
    down, _ = await run_test(standin_openai_llm, frames_to_send=[LLMContextFrame(context=context)])
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert text.startswith("Here is what the knowledge base says.")
    assert "Refunds are issued within 30 days." in text


async def test_pipecat_reports_the_stand_ins_token_usage(standin_openai_llm):
    down, _ = await run_test(
        standin_openai_llm,
        frames_to_send=[LLMContextFrame(context=LLMContext(messages=QUESTION))],
        pipeline_params=PipelineParams(enable_metrics=True, enable_usage_metrics=True),
    )
    usage = [
        d.value
        for f in down
        if isinstance(f, MetricsFrame)
        for d in f.data
        if isinstance(d, LLMUsageMetricsData)
    ]
    assert len(usage) == 1
    assert usage[0].prompt_tokens == estimate_prompt_tokens(QUESTION)
    assert usage[0].completion_tokens == estimate_tokens(reply_to(QUESTION).text)


async def test_pipecat_pushes_an_error_upstream_when_the_service_fails(
    standin_openai_llm, openai_standin
):
    openai_standin.faults.http_error(500, path="/v1/chat/completions", times=None)
    _, up = await run_test(
        standin_openai_llm,
        frames_to_send=[LLMContextFrame(context=LLMContext(messages=QUESTION))],
    )
    errors = [f for f in up if isinstance(f, ErrorFrame)]
    assert len(errors) == 1
    assert "500" in errors[0].error
