# syntax=docker/dockerfile:1
# The ready-made speculative bot (bots/speculative_bot.py) behind Pipecat's runner, for a generic
# container platform (Kubernetes, ECS, Fly, Cloud Run). Pipecat Cloud uses its own base image
# instead: see docs/deployment.md.
#
#   docker build -t speculative-bot .                      # cloud services: Daily, WebRTC, RAG...
#   docker build --build-arg EXTRAS=daily,webrtc,rag,prometheus,redis,local -t speculative-bot .
#                                                          # + offline engines (Whisper, Piper)
#   docker run --env-file .env -p 7860:7860 -p 9464:9464 speculative-bot
#
# Secrets come from the environment at run time, never from the image: .dockerignore keeps .env
# out of the build context (Pipecat's runner would load a .env it finds, overriding the platform).

ARG PYTHON_VERSION=3.11

# --- build: a virtualenv with the package and its extras ----------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build

# daily, webrtc: Pipecat's transports and runner; rag: the embedded MiniLM store (the fallback
# when Pinecone is not configured); pinecone; prometheus: the /metrics endpoint; redis: the
# per-user profile store shared by the fleet.
ARG EXTRAS=daily,webrtc,rag,pinecone,prometheus,redis

# pip compiles the bytecode at install: the runtime user cannot write /opt/venv, and compiling
# Pipecat's modules at every start would slow every cold start.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY pipecat_speculative ./pipecat_speculative
RUN pip install --upgrade pip \
    && pip install ".[${EXTRAS}]"

# --- runtime: the virtualenv, the bot script, a non-root user -----------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/bot bot

COPY --from=build /opt/venv /opt/venv
# /metrics must be reachable from the scraper, not only from inside the container.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PROMETHEUS_ADDR=0.0.0.0 \
    PROMETHEUS_PORT=9464

WORKDIR /home/bot
COPY --chown=bot:bot bots ./bots
USER bot

# 7860: Pipecat's runner (POST /start, GET /status, WebRTC offers); 9464: Prometheus /metrics.
EXPOSE 7860 9464

# The runner answers GET /status once it listens; urllib raises (exit 1) on anything but a 2xx.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/status', timeout=4)"]

# Daily rooms (the runner creates them with DAILY_API_KEY); override the command for -t webrtc.
CMD ["python", "bots/speculative_bot.py", "-t", "daily", "--host", "0.0.0.0", "--port", "7860"]
