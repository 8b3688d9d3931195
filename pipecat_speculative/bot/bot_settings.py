"""The ready-made bot's configuration: which services, their keys, and the plugin's knobs.

Everything comes from the environment (``BotSettings.from_env``) so the same file runs on a laptop,
in a container and on Pipecat Cloud, where secrets arrive as environment variables. Validation
happens once, at start (:meth:`BotSettings.check`), so a missing key is one clear line before the
server listens, not a stack trace in the middle of the first call.

Each service is chosen separately (``BOT_STT``, ``BOT_LLM``, ``BOT_TTS``, ``BOT_RAG``). Left at
``auto``, the bot is *cloud* when any of the three speech/LLM keys is set and *offline* (local
Whisper, the OpenAI stand-in, local Piper, the embedded store) when none is: a fresh checkout with
no keys still answers in a browser.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

__all__ = [
    "BotSettings",
    "ConfigError",
    "ENV_VARS",
]

SttChoice = Literal["nova", "flux", "whisper"]
LlmChoice = Literal["openai", "standin"]
TtsChoice = Literal["elevenlabs", "piper"]
RagChoice = Literal["pinecone", "local", "off"]

ENV_VARS: dict[str, str] = {
    "OPENAI_API_KEY": "OpenAI key (LLM, cloud mode)",
    "OPENAI_BASE_URL": "OpenAI-compatible base URL ending in /v1 (optional)",
    "OPENAI_MODEL": "chat model (gpt-4o-mini)",
    "DEEPGRAM_API_KEY": "Deepgram key (STT, cloud mode)",
    "ELEVENLABS_API_KEY": "ElevenLabs key (TTS, cloud mode)",
    "ELEVENLABS_VOICE_ID": "ElevenLabs voice id",
    "DAILY_API_KEY": "Daily key: the runner creates a room with it for -t daily",
    "DAILY_ROOM_URL": "an existing Daily room for -d (Pipecat's runner reads it)",
    "PINECONE_API_KEY": "Pinecone key (RAG, with PINECONE_INDEX_HOST)",
    "PINECONE_INDEX_HOST": "Pinecone index host (https://<index>-<project>.svc.<region>.pinecone.io)",
    "PINECONE_NAMESPACE": "Pinecone namespace ('' by default)",
    "BOT_MODE": "auto | cloud | offline: the default of the four service choices below",
    "BOT_STT": "auto | nova | flux | whisper",
    "BOT_LLM": "auto | openai | standin",
    "BOT_TTS": "auto | elevenlabs | piper",
    "BOT_RAG": "auto | pinecone | local | off",
    "BOT_RAG_STORE": "directory of the embedded vector store (out/bot_rag_store)",
    "BOT_RAG_DOCS": "file or directory ingested into an empty embedded store (the sample document)",
    "BOT_SYSTEM_PROMPT": "the LLM's system message",
    "BOT_TURNS_JSONL": "per-turn timing records (out/bot_turns.jsonl; empty disables)",
    "PROMETHEUS_PORT": "port of the /metrics endpoint (9464; 0 disables)",
    "PROMETHEUS_ADDR": "address /metrics binds (127.0.0.1; 0.0.0.0 in a container)",
    "SPECULATIVE_WARM": "keep connections warm (true)",
    "SPECULATIVE_DEBOUNCE_INITIAL_SECS": "speculation delay before anything is learned (0.2)",
    "SPECULATIVE_DEBOUNCE_MIN_SECS": "lower bound of the learned delay (0.0)",
    "SPECULATIVE_DEBOUNCE_MAX_SECS": "upper bound of the learned delay (1.0)",
    "SPECULATIVE_DEBOUNCE_ADAPTIVE": "learn the delay per session (true)",
    "SPECULATIVE_VAD_STOP_SECS": "Silero stop_secs (0.2)",
}
"""Every variable the bot reads, with what it is for (``.env.example`` lists the same)."""


class ConfigError(Exception):
    """The configuration cannot work (a key is missing, a value is not understood).

    The message is one line, meant to be printed as is.
    """


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"expected true or false, got {value!r}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    v = value.strip().lower()
    if v not in allowed:
        raise ConfigError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return v


def _float(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected a number") from None


@dataclass(frozen=True)
class BotSettings:
    """What the ready-made bot runs with.

    The plugin's knobs are few on purpose: the debounce learns the rest per session.

    Parameters:
        stt: ``nova`` (Deepgram Nova + this plugin's speculation), ``flux`` (Deepgram Flux with
            its own eager end of turn; the plugin then only times turns) or ``whisper`` (local).
        llm: ``openai`` or ``standin`` (the loopback OpenAI stand-in, started in-process).
        tts: ``elevenlabs`` (WebSocket) or ``piper`` (local).
        rag: ``pinecone``, ``local`` (embedded MiniLM store) or ``off``.
        openai_api_key: OpenAI key.
        openai_base_url: OpenAI-compatible base URL; None is api.openai.com.
        openai_model: Chat model.
        deepgram_api_key: Deepgram key.
        elevenlabs_api_key: ElevenLabs key.
        elevenlabs_voice_id: ElevenLabs voice.
        daily_api_key: Daily key (the runner creates rooms with it).
        pinecone_api_key: Pinecone key.
        pinecone_index_host: Pinecone index host.
        pinecone_namespace: Pinecone namespace.
        rag_store: Embedded store directory.
        rag_docs: What an empty embedded store is filled from; None is the sample document.
        system_prompt: System message; None is the builder's default.
        turns_jsonl: Timing JSONL path; None disables it.
        prometheus_port: ``/metrics`` port; 0 disables it.
        prometheus_addr: Address ``/metrics`` binds.
        warm: Warm connections before the first turn.
        debounce_initial_secs: Speculation delay before anything is learned.
        debounce_min_secs: Lower bound of the learned delay.
        debounce_max_secs: Upper bound of the learned delay.
        debounce_adaptive: Learn the delay (False fixes it at the initial value).
        vad_stop_secs: Silero ``stop_secs``.
    """

    stt: SttChoice = "whisper"
    llm: LlmChoice = "standin"
    tts: TtsChoice = "piper"
    rag: RagChoice = "local"
    openai_api_key: str = ""
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    deepgram_api_key: str = ""
    elevenlabs_api_key: str = ""
    elevenlabs_voice_id: str = "21m00Tcm4TlvDq8ikWAM"
    daily_api_key: str = ""
    pinecone_api_key: str = ""
    pinecone_index_host: str = ""
    pinecone_namespace: str = ""
    rag_store: Path = field(default_factory=lambda: Path("out/bot_rag_store"))
    rag_docs: Path | None = None
    system_prompt: str | None = None
    turns_jsonl: Path | None = field(default_factory=lambda: Path("out/bot_turns.jsonl"))
    prometheus_port: int = 9464
    prometheus_addr: str = "127.0.0.1"
    warm: bool = True
    debounce_initial_secs: float = 0.2
    debounce_min_secs: float = 0.0
    debounce_max_secs: float = 1.0
    debounce_adaptive: bool = True
    vad_stop_secs: float = 0.2

    @property
    def offline(self) -> bool:
        """Whether nothing leaves the machine (no cloud service chosen)."""
        return (
            self.stt == "whisper"
            and self.llm == "standin"
            and self.tts == "piper"
            and self.rag in ("local", "off")
        )

    def describe(self) -> str:
        """One line saying what runs, for the start banner."""
        mode = "OFFLINE (local engines, no network)" if self.offline else "cloud"
        return f"{mode}: stt={self.stt} llm={self.llm} tts={self.tts} rag={self.rag}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BotSettings:
        """Read the settings from the environment (see :data:`ENV_VARS`).

        Args:
            env: The variables; ``os.environ`` when None.

        Raises:
            ConfigError: A value is not understood.
        """
        env = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return env.get(name, default).strip()

        keys = {
            "openai": get("OPENAI_API_KEY"),
            "deepgram": get("DEEPGRAM_API_KEY"),
            "elevenlabs": get("ELEVENLABS_API_KEY"),
        }
        mode = _choice("BOT_MODE", get("BOT_MODE", "auto"), ("auto", "cloud", "offline"))
        if mode == "auto":
            mode = "cloud" if any(keys.values()) else "offline"
        cloud = mode == "cloud"

        def pick(name: str, cloud_default: str, offline_default: str, allowed: tuple[str, ...]):
            v = _choice(name, get(name, "auto"), ("auto", *allowed))
            if v == "auto":
                return cloud_default if cloud else offline_default
            return v

        pinecone_ready = bool(get("PINECONE_API_KEY") and get("PINECONE_INDEX_HOST"))
        jsonl = get("BOT_TURNS_JSONL", "out/bot_turns.jsonl")
        docs = get("BOT_RAG_DOCS")
        try:
            port = int(get("PROMETHEUS_PORT", "9464"))
        except ValueError:
            raise ConfigError(
                f"PROMETHEUS_PORT={get('PROMETHEUS_PORT')!r}: expected a port"
            ) from None
        return cls(
            stt=pick("BOT_STT", "nova", "whisper", ("nova", "flux", "whisper")),  # type: ignore[arg-type]
            llm=pick("BOT_LLM", "openai", "standin", ("openai", "standin")),  # type: ignore[arg-type]
            tts=pick("BOT_TTS", "elevenlabs", "piper", ("elevenlabs", "piper")),  # type: ignore[arg-type]
            rag=pick(  # type: ignore[arg-type]
                "BOT_RAG",
                "pinecone" if pinecone_ready else "local",
                "local",
                ("pinecone", "local", "off"),
            ),
            openai_api_key=keys["openai"],
            openai_base_url=get("OPENAI_BASE_URL") or None,
            openai_model=get("OPENAI_MODEL", "gpt-4o-mini"),
            deepgram_api_key=keys["deepgram"],
            elevenlabs_api_key=keys["elevenlabs"],
            elevenlabs_voice_id=get("ELEVENLABS_VOICE_ID", cls.elevenlabs_voice_id),
            daily_api_key=get("DAILY_API_KEY"),
            pinecone_api_key=get("PINECONE_API_KEY"),
            pinecone_index_host=get("PINECONE_INDEX_HOST"),
            pinecone_namespace=get("PINECONE_NAMESPACE"),
            rag_store=Path(get("BOT_RAG_STORE", "out/bot_rag_store")),
            rag_docs=Path(docs) if docs else None,
            system_prompt=get("BOT_SYSTEM_PROMPT") or None,
            turns_jsonl=Path(jsonl) if jsonl else None,
            prometheus_port=port,
            prometheus_addr=get("PROMETHEUS_ADDR", "127.0.0.1"),
            warm=_bool(get("SPECULATIVE_WARM", "true")),
            debounce_initial_secs=_float(
                "SPECULATIVE_DEBOUNCE_INITIAL_SECS", get("SPECULATIVE_DEBOUNCE_INITIAL_SECS", "0.2")
            ),
            debounce_min_secs=_float(
                "SPECULATIVE_DEBOUNCE_MIN_SECS", get("SPECULATIVE_DEBOUNCE_MIN_SECS", "0.0")
            ),
            debounce_max_secs=_float(
                "SPECULATIVE_DEBOUNCE_MAX_SECS", get("SPECULATIVE_DEBOUNCE_MAX_SECS", "1.0")
            ),
            debounce_adaptive=_bool(get("SPECULATIVE_DEBOUNCE_ADAPTIVE", "true")),
            vad_stop_secs=_float(
                "SPECULATIVE_VAD_STOP_SECS", get("SPECULATIVE_VAD_STOP_SECS", "0.2")
            ),
        )

    def check(self, *, transport: str | None = None) -> None:
        """Fail early, in one line, when a chosen cloud service has no key.

        Args:
            transport: The runner's ``-t`` value; ``daily`` needs ``DAILY_API_KEY``.

        Raises:
            ConfigError: What is missing, and how to run offline instead.
        """
        missing: list[str] = []
        if self.stt in ("nova", "flux") and not self.deepgram_api_key:
            missing.append(f"DEEPGRAM_API_KEY (BOT_STT={self.stt})")
        if self.llm == "openai" and not self.openai_api_key:
            missing.append("OPENAI_API_KEY (BOT_LLM=openai)")
        if self.tts == "elevenlabs" and not self.elevenlabs_api_key:
            missing.append("ELEVENLABS_API_KEY (BOT_TTS=elevenlabs)")
        if self.rag == "pinecone":
            if not self.pinecone_api_key:
                missing.append("PINECONE_API_KEY (BOT_RAG=pinecone)")
            if not self.pinecone_index_host:
                missing.append("PINECONE_INDEX_HOST (BOT_RAG=pinecone)")
        if transport == "daily" and not self.daily_api_key:
            missing.append("DAILY_API_KEY (-t daily)")
        if missing:
            raise ConfigError(
                "missing " + ", ".join(missing) + "; set it (see .env.example) or run offline "
                "with BOT_MODE=offline -t webrtc"
            )
        if (
            not 0.0
            <= self.debounce_min_secs
            <= self.debounce_initial_secs
            <= self.debounce_max_secs
        ):
            raise ConfigError(
                "SPECULATIVE_DEBOUNCE_*: need 0 <= MIN_SECS <= INITIAL_SECS <= MAX_SECS, got "
                f"{self.debounce_min_secs}, {self.debounce_initial_secs}, {self.debounce_max_secs}"
            )

    def with_(self, **changes: object) -> BotSettings:
        """A copy with some fields changed (tests, examples)."""
        return replace(self, **changes)  # type: ignore[arg-type]
