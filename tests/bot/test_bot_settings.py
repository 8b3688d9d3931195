"""The bot's configuration: offline without keys, cloud with them, one clear line when a key is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipecat_speculative.bot import ENV_VARS, BotSettings, ConfigError

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"OPENAI_API_KEY": "o", "DEEPGRAM_API_KEY": "d", "ELEVENLABS_API_KEY": "e"}


def test_no_keys_is_offline():
    s = BotSettings.from_env({})
    assert (s.stt, s.llm, s.tts, s.rag) == ("whisper", "standin", "piper", "local")
    assert s.offline and "OFFLINE" in s.describe()
    s.check(transport="webrtc")


def test_keys_mean_cloud_with_nova_speculation_and_pinecone_when_configured():
    s = BotSettings.from_env({**KEYS, "PINECONE_API_KEY": "p", "PINECONE_INDEX_HOST": "https://h"})
    assert (s.stt, s.llm, s.tts, s.rag) == ("nova", "openai", "elevenlabs", "pinecone")
    assert not s.offline
    s.check(transport="webrtc")


def test_a_missing_key_is_one_line_naming_it():
    s = BotSettings.from_env({"OPENAI_API_KEY": "o"})
    with pytest.raises(ConfigError) as e:
        s.check(transport="daily")
    message = str(e.value)
    assert "\n" not in message
    for name in ("DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY", "DAILY_API_KEY", "BOT_MODE=offline"):
        assert name in message
    assert "OPENAI_API_KEY" not in message


def test_services_mix_and_flux_is_a_setting():
    s = BotSettings.from_env({**KEYS, "BOT_STT": "flux", "BOT_TTS": "piper", "BOT_RAG": "off"})
    assert (s.stt, s.tts, s.rag) == ("flux", "piper", "off")


def test_plugin_knobs_and_bad_values():
    s = BotSettings.from_env(
        {
            "SPECULATIVE_DEBOUNCE_INITIAL_SECS": "0.3",
            "SPECULATIVE_WARM": "false",
            "PROMETHEUS_PORT": "0",
        }
    )
    assert (s.debounce_initial_secs, s.warm, s.prometheus_port) == (0.3, False, 0)
    with pytest.raises(ConfigError, match="BOT_STT"):
        BotSettings.from_env({"BOT_STT": "siri"})
    with pytest.raises(ConfigError, match="SPECULATIVE_DEBOUNCE_MAX_SECS"):
        BotSettings.from_env({"SPECULATIVE_DEBOUNCE_MAX_SECS": "soon"})
    with pytest.raises(ConfigError, match="MIN_SECS <= INITIAL_SECS"):
        BotSettings.from_env({"SPECULATIVE_DEBOUNCE_INITIAL_SECS": "2"}).check()


def test_env_example_lists_every_variable():
    example = (ROOT / ".env.example").read_text()
    listed = {
        line.split("=", 1)[0]
        for line in example.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert listed == set(ENV_VARS)


def test_the_bot_script_exits_with_one_line_when_a_key_is_missing(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "o", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bots" / "speculative_bot.py"), "-t", "daily"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("speculative_bot: missing DEEPGRAM_API_KEY")
    assert "Traceback" not in result.stderr


async def test_a_session_with_a_missing_key_ends_with_one_logged_line(monkeypatch):
    import importlib.util

    from loguru import logger

    spec = importlib.util.spec_from_file_location(
        "speculative_bot", ROOT / "bots" / "speculative_bot.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY", "BOT_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "o")
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="ERROR")
    try:
        await module.bot(object())
    finally:
        logger.remove(sink)
    assert len(lines) == 1 and "missing DEEPGRAM_API_KEY" in lines[0]
