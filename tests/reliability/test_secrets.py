"""API keys never appear in a repr or in the stdlib log of a websocket handshake."""

import dataclasses
import logging
import traceback

import pytest
import websockets
from pipecat.processors.frame_processor import FrameProcessor

from pipecat_speculative.pipeline_builder import (
    BotPipelineConfig,
    ServiceEndpoints,
    build_bot_pipeline,
)
from pipecat_speculative.secret_log_filter import install_secret_log_filter

OPENAI_KEY = "sk-openai-SECRET-1111"
DEEPGRAM_KEY = "dg-SECRET-2222"
ELEVENLABS_KEY = "xi-SECRET-3333"
KEYS = (OPENAI_KEY, DEEPGRAM_KEY, ELEVENLABS_KEY)

ENDPOINTS = ServiceEndpoints(
    openai_base_url="http://127.0.0.1:9/v1",
    openai_api_key=OPENAI_KEY,
    deepgram_base_url="http://127.0.0.1:9",
    deepgram_flux_url="ws://127.0.0.1:9/v2/listen",
    deepgram_api_key=DEEPGRAM_KEY,
    elevenlabs_ws_url="ws://127.0.0.1:9",
    elevenlabs_api_key=ELEVENLABS_KEY,
)


def assert_no_key(text: str) -> None:
    for key in KEYS:
        assert key not in text


def test_endpoints_repr_masks_every_key_but_shows_addresses():
    text = repr(ENDPOINTS)
    assert_no_key(text)
    assert "openai_api_key='***'" in text
    assert "http://127.0.0.1:9/v1" in text
    assert "openai_api_key=''" in repr(ServiceEndpoints())  # an unset key shows as unset


def test_config_repr_str_and_formatted_traceback_leak_no_key():
    config = BotPipelineConfig(endpoints=ENDPOINTS, warm=False)
    assert_no_key(repr(config))
    assert_no_key(str(config))
    assert_no_key(f"{config}")
    try:
        raise RuntimeError(f"bad config {config!r}")
    except RuntimeError:
        assert_no_key(traceback.format_exc())


async def test_bot_pipeline_repr_leaks_no_key():
    bot = build_bot_pipeline(
        BotPipelineConfig(system="speculative", endpoints=ENDPOINTS, warm=True),
        transport_input=FrameProcessor(),
        transport_output=FrameProcessor(),
    )
    try:
        assert_no_key(repr(bot))
        for service in (bot.stt, bot.llm, bot.tts):
            assert_no_key(repr(service))
            assert_no_key(str(service))
    finally:
        await bot.close()


async def test_websocket_handshake_debug_log_masks_the_elevenlabs_key(elevenlabs_standin, caplog):
    install_secret_log_filter()
    url = f"{elevenlabs_standin.ws_url}/v1/text-to-speech/standin/multi-stream-input"
    with caplog.at_level(logging.DEBUG, logger="websockets.client"):
        async with websockets.connect(url, additional_headers={"xi-api-key": ELEVENLABS_KEY}):
            pass
    lines = [r.getMessage() for r in caplog.records if r.name == "websockets.client"]
    assert any(line == "> xi-api-key: ***" for line in lines), lines
    assert_no_key("\n".join(lines))


def test_installing_twice_adds_one_filter():
    first = install_secret_log_filter()
    assert install_secret_log_filter() is first
    filters = logging.getLogger("websockets.client").filters
    assert sum(f is first for f in filters) == 1


def test_a_missing_key_is_a_clear_error_at_build_time_naming_it():
    endpoints = dataclasses.replace(ENDPOINTS, deepgram_api_key="", elevenlabs_api_key=" ")
    with pytest.raises(ValueError, match="deepgram_api_key, elevenlabs_api_key") as error:
        build_bot_pipeline(
            BotPipelineConfig(endpoints=endpoints, warm=False),
            transport_input=FrameProcessor(),
            transport_output=FrameProcessor(),
        )
    assert_no_key(str(error.value))
