"""Headless Chromium driven over the DevTools protocol, with a WAV file as its microphone.

No playwright: Debian's ``chromium`` and the ``websockets`` client the project already depends on
are enough. Flags per ``offline.md``: a fake device playing a file, no permission prompt, and no
background traffic.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import socket
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import websockets

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")

# Keeps every RTCPeerConnection the page creates, so the test can read its inbound audio stats.
PEER_CONNECTION_SPY = """
(() => {
  const Orig = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Orig(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Orig.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Orig);
})();
"""

INBOUND_AUDIO_STATS = """
(async () => {
  const out = {peers: (window.__pcs || []).length, bytes: 0, energy: 0, samples: 0, states: []};
  for (const pc of window.__pcs || []) {
    out.states.push(pc.connectionState);
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out.bytes += s.bytesReceived || 0;
        out.energy += s.totalAudioEnergy || 0;
        out.samples += s.totalSamplesReceived || 0;
      }
    });
  }
  return JSON.stringify(out);
})()
"""


def find_chromium() -> str | None:
    """The Chromium executable, or None."""
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HeadlessChromium:
    """One headless Chromium whose microphone plays ``wav``."""

    def __init__(self, wav: Path, *, executable: str | None = None):
        self.wav = wav
        self.executable = executable or find_chromium()
        self.port = free_port()
        self._profile = tempfile.TemporaryDirectory(prefix="e2e-chromium-")
        self._proc: subprocess.Popen[bytes] | None = None
        self._ws: Any = None
        self._ids = itertools.count(1)
        self.log_path = Path(self._profile.name) / "chromium.log"

    async def __aenter__(self) -> HeadlessChromium:
        assert self.executable, "chromium not found"
        args = [
            self.executable,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--remote-debugging-port={self.port}",
            f"--user-data-dir={self._profile.name}",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={self.wav}",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            "about:blank",
        ]
        log = self.log_path.open("wb")
        # Popen only forks; nothing here waits on the child.
        self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220
        targets = await self._targets()
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await websockets.connect(page["webSocketDebuggerUrl"], max_size=None)
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        return self

    async def _targets(self) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/json"
        for _ in range(100):
            try:
                raw = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=1).read())
                return json.loads(raw)
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"chromium DevTools did not answer on {url}")

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and wait for its result (events are skipped)."""
        msg_id = next(self._ids)
        await self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await self._ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (promises awaited) and return its value."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    async def open(self, url: str) -> None:
        """Open ``url`` with the peer connection spy installed first."""
        await self.send("Page.addScriptToEvaluateOnNewDocument", source=PEER_CONNECTION_SPY)
        await self.send("Page.navigate", url=url)

    async def inbound_audio(self) -> dict[str, Any]:
        """Bytes, energy and samples of the audio the page received over WebRTC."""
        return json.loads(await self.evaluate(INBOUND_AUDIO_STATS))

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._proc is not None:
            self._proc.terminate()
            try:
                await asyncio.to_thread(self._proc.wait, 10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._profile.cleanup()
