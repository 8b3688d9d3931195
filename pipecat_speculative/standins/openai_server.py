"""OpenAI chat completions stand-in (loopback, deterministic; not a language model).

Speaks enough of the OpenAI REST API for the real ``openai`` client and Pipecat's
``OpenAILLMService`` to run unchanged against ``http://127.0.0.1:PORT/v1``:

- ``POST /v1/chat/completions``, streaming (SSE) and not. A streamed reply is, as OpenAI sends
  it: a role delta ``{"role": "assistant", "content": ""}``, content pieces (one word each), an
  empty delta with ``finish_reason`` ``"stop"`` (``"length"`` when ``max_tokens`` cut it,
  ``"tool_calls"`` for a call), with ``stream_options.include_usage`` a last chunk with
  ``"choices": []`` and the usage, then ``data: [DONE]``. Tool calls stream as
  ``delta.tool_calls`` fragments (name first, then argument pieces).
- ``GET /v1/models`` and ``GET /v1/models/{model}``: a token-free request to warm a connection.
- ``Authorization: Bearer <key>`` is required; errors are ``{"error": {message, type, param,
  code}}`` with the status OpenAI uses (401, 400, 404, 429, 500), which the client maps to its
  exception types.

What it answers is decided by :mod:`.deterministic_llm` (same conversation, same answer; retrieved
passages are quoted; tool calls when asked for). Timing follows the :class:`LatencyProfile`:
``llm_ttft_secs`` to the first piece, then ``llm_tokens_per_sec`` (tokens estimated at 4
characters), plus the new-connection penalty on a connection's first request.

Each request's record (``server.requests``) notes in ``info``: ``reply_source``,
``prompt_tokens``, ``completion_tokens`` (of the full reply), ``completion_tokens_sent`` (what
actually left before the end or a disconnect), ``finish_reason``, ``client_disconnected`` and
``completed``: enough to prove that a withdrawn inference stopped early.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from loguru import logger

from pipecat_speculative.standins.base import StandinServer
from pipecat_speculative.standins.deterministic_llm import (
    StandinReply,
    estimate_prompt_tokens,
    estimate_tokens,
    reply_to,
    split_stream_pieces,
)
from pipecat_speculative.standins.faults import FaultKind
from pipecat_speculative.standins.profile import LatencyProfile

__all__ = ["DEFAULT_MODELS", "OpenAIStandin"]

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1")
"""Models listed by ``GET /v1/models``; any model name is accepted by chat completions."""

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
_ARGUMENT_PIECE_CHARS = 8


class OpenAIStandin(StandinServer):
    """Loopback OpenAI chat completions server with deterministic answers.

    Point a client at ``f"{server.base_url}/v1"``.

    Args:
        profile: Latency profile (``llm_ttft_secs``, ``llm_tokens_per_sec``, the ``"openai"``
            new-connection penalty).
        models: Model ids listed by ``GET /v1/models``.
        **kwargs: :class:`StandinServer` options (``api_key``, ``port``,
            ``keepalive_timeout_secs``, ...).
    """

    service = "openai"

    def __init__(
        self,
        *,
        profile: LatencyProfile | None = None,
        models: tuple[str, ...] = DEFAULT_MODELS,
        **kwargs: Any,
    ) -> None:
        # Long conversations (or images) exceed aiohttp's 1 MB default; OpenAI takes far more.
        kwargs.setdefault("client_max_size", 32 * 1024**2)
        super().__init__(profile=profile, **kwargs)
        self.models = models
        self._completion_ids = itertools.count(1)
        self.replies: list[StandinReply] = []
        """Every reply decided, in order (text or tool call), for tests to inspect."""

    def _describe(self) -> str:
        return "deterministic stand-in, not a language model"

    def _setup_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{model}", self._get_model)
        app.router.add_post("/v1/chat/completions", self._chat_completions)

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        return scheme.lower() == "bearer" and self._key_ok(key.strip())

    def _error_response(
        self, status: int, message: str, *, retry_after_secs: float | None = None
    ) -> web.Response:
        kind, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "error", None))
        if status == 401 and message.startswith("Invalid or missing"):
            message = "Incorrect API key provided. You can find your API key in your settings."
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        headers = {}
        if retry_after_secs is not None:
            headers["Retry-After"] = f"{retry_after_secs:g}"
        return web.json_response(body, status=status, headers=headers)

    # -- models -------------------------------------------------------------------------------

    def _model(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": "standin"}

    async def _list_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [self._model(m) for m in self.models]})

    async def _get_model(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        if model not in self.models:
            return self._error_response(404, f"The model '{model}' does not exist.")
        return web.json_response(self._model(model))

    # -- chat completions ---------------------------------------------------------------------

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        record = self.record_of(request)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._error_response(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, Mapping):
            return self._error_response(400, "The request body must be a JSON object.")
        messages = body.get("messages")
        model = body.get("model")
        if not isinstance(messages, list) or not messages:
            return self._error_response(400, "'messages' is a required property.")
        if not isinstance(model, str) or not model:
            return self._error_response(400, "you must provide a model parameter")

        tools = body.get("tools") or None
        reply = reply_to(messages, tools, body.get("tool_choice"))
        self.replies.append(reply)
        prompt_tokens = estimate_prompt_tokens(messages, tools)
        record.info.update(
            reply_source=reply.source,
            prompt_tokens=prompt_tokens,
            completion_tokens_sent=0,
            client_disconnected=False,
            completed=False,
        )
        logger.debug(
            f"{self}: chat completion ({reply.source}, stream={bool(body.get('stream'))}, "
            f"prompt≈{prompt_tokens} tokens) for {reply.question[:60]!r}"
        )
        completion_id = f"chatcmpl-standin{next(self._completion_ids):08d}"
        if body.get("stream"):
            return await self._stream(request, body, reply, prompt_tokens, completion_id)
        return await self._complete(request, body, reply, prompt_tokens, completion_id)

    def _limit(self, body: Mapping[str, Any]) -> int | None:
        for key in ("max_completion_tokens", "max_tokens"):
            value = body.get(key)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def _pieces(self, reply: StandinReply, limit: int | None) -> tuple[list[str], str]:
        """Content pieces to send and the finish reason (``length`` when cut by max_tokens)."""
        pieces = split_stream_pieces(reply.text or "")
        if limit is None:
            return pieces, "stop"
        kept: list[str] = []
        for piece in pieces:
            if estimate_tokens("".join([*kept, piece])) > limit:
                return kept, "length"
            kept.append(piece)
        return kept, "stop"

    @staticmethod
    def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    async def _complete(
        self,
        request: web.Request,
        body: Mapping[str, Any],
        reply: StandinReply,
        prompt_tokens: int,
        completion_id: str,
    ) -> web.StreamResponse:
        record = self.record_of(request)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if reply.tool_call is not None:
            call = reply.tool_call
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            ]
            completion_text = call.name + call.arguments
            finish = "tool_calls"
        else:
            pieces, finish = self._pieces(reply, self._limit(body))
            completion_text = "".join(pieces)
            message["content"] = completion_text
        completion_tokens = estimate_tokens(completion_text)
        await asyncio.sleep(
            self.profile.delay(self.profile.llm_ttft_secs)
            + self.profile.llm_stream_secs(max(0, completion_tokens - 1))
        )
        if fault := self._take_fault(FaultKind.DISCONNECT, request):
            self._abort(request)
            return web.Response(status=500)
        payload: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": self._usage(prompt_tokens, completion_tokens),
            "system_fingerprint": "fp_standin",
        }
        if fault := self._take_fault(FaultKind.MALFORMED, request):
            text = self._malformed_json(fault, {"id": completion_id, "object": "chat.completion"})
            return web.Response(text=text, content_type="application/json")
        record.info.update(
            completion_tokens=completion_tokens,
            completion_tokens_sent=completion_tokens,
            finish_reason=finish,
            completed=True,
        )
        return web.json_response(payload)

    async def _stream(
        self,
        request: web.Request,
        body: Mapping[str, Any],
        reply: StandinReply,
        prompt_tokens: int,
        completion_id: str,
    ) -> web.StreamResponse:
        record = self.record_of(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        created = int(time.time())
        model = body["model"]
        disconnect = self._take_fault(FaultKind.DISCONNECT, request)
        malformed = self._take_fault(FaultKind.MALFORMED, request)
        stall = self._take_fault(FaultKind.STALL, request)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            data: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_standin",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                data["usage"] = None
            return data

        # (delta, text it carries) in order: pacing follows the estimated tokens of the text,
        # and the first text goes out at the time to first token.
        steps: list[tuple[dict[str, Any], str]] = []
        if reply.tool_call is not None:
            call = reply.tool_call
            args = call.arguments
            steps.append(
                (
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": ""},
                            }
                        ],
                    },
                    call.name,
                )
            )
            for i in range(0, len(args), _ARGUMENT_PIECE_CHARS):
                piece = args[i : i + _ARGUMENT_PIECE_CHARS]
                steps.append(
                    ({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, piece)
                )
            finish = "tool_calls"
            completion_text = call.name + args
        else:
            pieces, finish = self._pieces(reply, self._limit(body))
            steps.append(({"role": "assistant", "content": "", "refusal": None}, ""))
            steps.extend(({"content": p}, p) for p in pieces)
            completion_text = "".join(pieces)
        completion_tokens = estimate_tokens(completion_text)
        record.info.update(completion_tokens=completion_tokens, finish_reason=finish)

        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "openai-processing-ms": "1",
                "x-request-id": f"req_{completion_id}",
            }
        )
        sent_text = ""
        content_chunks = 0
        try:
            await response.prepare(request)
            await asyncio.sleep(self.profile.delay(self.profile.llm_ttft_secs))
            for delta, cost in steps:
                if cost and content_chunks > 0:
                    await asyncio.sleep(self.profile.llm_stream_secs(len(cost) / 4))
                if disconnect is not None and content_chunks >= disconnect.after and cost:
                    logger.debug(f"{self}: cutting the stream after {content_chunks} chunks")
                    self._abort(request)
                    return response
                if stall is not None and content_chunks >= stall.after and cost:
                    logger.debug(f"{self}: stalling the stream for {stall.delay_secs:g} s")
                    await asyncio.sleep(stall.delay_secs)
                    stall = None
                if malformed is not None and content_chunks >= malformed.after and cost:
                    # "missing_fields": a choice without its delta, which clients index into.
                    bad = self._malformed_json(
                        malformed,
                        {
                            "id": completion_id,
                            "object": "chat.completion.chunk",
                            "choices": [{"index": 0}],
                        },
                    )
                    await response.write(f"data: {bad}\n\n".encode())
                    malformed = None
                await response.write(f"data: {json.dumps(chunk(delta))}\n\n".encode())
                if cost:
                    content_chunks += 1
                    sent_text += cost
                    record.info["completion_tokens_sent"] = estimate_tokens(sent_text)
            await response.write(f"data: {json.dumps(chunk({}, finish))}\n\n".encode())
            if include_usage:
                usage = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_standin",
                    "choices": [],
                    "usage": self._usage(prompt_tokens, completion_tokens),
                }
                await response.write(f"data: {json.dumps(usage)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:
            record.info["client_disconnected"] = True
            logger.debug(
                f"{self}: client closed the stream after "
                f"{record.info['completion_tokens_sent']}/{completion_tokens} tokens"
            )
            return response
        record.info["completed"] = True
        return response
