"""The Dockerfile can be checked without Docker: what it copies exists, the extras it installs
are the package's, its health check asks the port the runner listens on, and no secret enters
the build context."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def test_the_extras_it_installs_are_the_packages():
    (extras,) = (a.split("=", 1)[1] for a in instructions("ARG") if a.startswith("EXTRAS="))
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]

    assert set(extras.split(",")) <= set(declared)
    assert {"daily", "prometheus", "redis"} <= set(extras.split(","))


def test_everything_it_copies_from_the_context_exists_and_is_not_ignored():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    sources = [
        part
        for args in instructions("COPY")
        if not args.startswith("--from")
        for part in args.replace("--chown=bot:bot", "").split()[:-1]
    ]

    assert sources, "no COPY from the build context"
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source not in ignored, source
    assert ".env" in ignored  # secrets come from the platform at run time


def test_the_health_check_asks_the_runner_on_the_port_it_listens_on():
    (healthcheck,) = instructions("HEALTHCHECK")
    (cmd,) = instructions("CMD")
    port = re.search(r'"--port", "(\d+)"', cmd).group(1)

    assert f"http://127.0.0.1:{port}/status" in healthcheck
    assert '"--host", "0.0.0.0"' in cmd
    assert (ROOT / re.search(r'"(bots/[^"]+)"', cmd).group(1)).is_file()
    assert instructions("USER") == ["bot"]
