"""The ``pipecat-speculative`` command. Commands stay thin: each delegates to its module.

Bad input (a malformed JSONL, scenario or latency profile) ends with one line naming the file, the
line or field and the problem, and exit code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

try:
    import typer
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the pipecat-speculative command line needs the cli extra: "
        "pip install 'pipecat-speculative[cli]'"
    ) from e

__all__ = ["InputError", "app", "main"]

app = typer.Typer(
    name="pipecat-speculative",
    help="Speculative turns, adaptive debounce and trustworthy turn timing for Pipecat.",
    no_args_is_help=True,
    add_completion=False,
)

_debug = False


class InputError(Exception):
    """Bad user input, already worded for the user (file, line or field, problem)."""


def _distribution_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if not value:
        return
    typer.echo(
        f"pipecat-speculative {_distribution_version('pipecat-speculative')} "
        f"(pipecat-ai {_distribution_version('pipecat-ai')}, "
        f"Python {sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro})"
    )
    raise typer.Exit()


def _import_pipecat_quietly() -> None:
    """Import Pipecat with its import-time banner muted.

    Pipecat logs a version banner on first import (it mutes it only for its own CLI); on every
    command of this one it is noise in front of the output. Only the import is muted: Pipecat's
    logs are back on as soon as it returns.
    """
    if "pipecat" in sys.modules:
        return
    from loguru import logger

    logger.disable("pipecat")
    try:
        import pipecat  # noqa: F401
    finally:
        logger.enable("pipecat")


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn input errors into one line on stderr and exit code 1 (a traceback with --debug)."""
    from pipecat_speculative.metrics.report import ReportInputError
    from pipecat_speculative.scenarios.scenario import ScenarioError

    try:
        yield
    except (InputError, ReportInputError, ScenarioError) as e:
        if _debug:
            raise
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an input error.")
    ] = False,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the versions."
        ),
    ] = False,
):
    """Speculative turns, adaptive debounce and trustworthy turn timing for Pipecat."""
    global _debug
    _debug = debug
    _import_pipecat_quietly()


def _check_profile(path: str | list[str] | None) -> None:
    """Load latency profiles once (names or files), so a bad one fails before any work starts."""
    if path is None:
        return
    if isinstance(path, list):
        for one in path:
            _check_profile(one)
        return
    import yaml

    from pipecat_speculative.standins.profile import LatencyProfile

    try:
        LatencyProfile.load(path)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML: {e}") from e
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
    except (ValueError, TypeError) as e:
        message = str(e)
        raise InputError(message if message.startswith(str(path)) else f"{path}: {message}") from e


def _check_scenario(scenario: str) -> None:
    from pipecat_speculative.scenarios.scenario import load_builtin_scenario, load_scenario

    if Path(scenario).suffix in (".yaml", ".yml"):
        load_scenario(scenario)
    else:
        load_builtin_scenario(scenario)


def _offline_run_logging(level: str) -> None:
    """Logs of a run against the stand-ins: ``level`` and up on stderr, no aiohttp noise."""
    from loguru import logger

    from pipecat_speculative.offline_session import quiet_standin_server_errors

    quiet_standin_server_errors()
    logger.remove()
    logger.add(sys.stderr, level=level)


@app.command()
def report(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="Turn timing JSONL file."),
    ],
    png: Annotated[
        Path | None,
        typer.Option("--png", help="Where to write the PNG (default: FILE with a .png suffix)."),
    ] = None,
):
    """Print the turns, p50/p95 per stage and the speculation summary; write a PNG."""
    from pipecat_speculative.metrics.report import run_report

    with _user_errors():
        run_report(file, png=png)


def _seconds_list(option: str, value: str) -> list[float]:
    try:
        values = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option} takes seconds separated by commas, got {value!r}") from None
    if not values or any(v < 0 for v in values):
        raise InputError(f"{option} takes one or more seconds >= 0, got {value!r}")
    return values


@app.command()
def tune(
    files: Annotated[
        list[Path],
        typer.Argument(exists=True, dir_okay=False, readable=True, help="Turn timing JSONL files."),
    ],
    png: Annotated[
        Path | None, typer.Option("--png", help="Write latency against waste here.")
    ] = None,
    write_profile: Annotated[
        Path | None,
        typer.Option("--write-profile", help="Write the recommended setting as a profile (JSON)."),
    ] = None,
    delays: Annotated[
        str, typer.Option("--delays", help="Speculation delays to try, seconds, comma-separated.")
    ] = "0,0.1,0.2,0.3,0.5",
    floors: Annotated[
        str, typer.Option("--floors", help="Commit floors to try, seconds, comma-separated.")
    ] = "0.3,0.45,0.6,0.8",
    backoffs: Annotated[
        str, typer.Option("--backoffs", help="Resume backoffs to try (>= 1), comma-separated.")
    ] = "1,1.5,2",
):
    """Replay recorded pauses under other settings: latency, cancellations, waste, cut-ins."""
    from pipecat_speculative.metrics.tuner import run_tune

    with _user_errors():
        delay_values = _seconds_list("--delays", delays)
        floor_values = _seconds_list("--floors", floors)
        backoff_values = _seconds_list("--backoffs", backoffs)
        if any(b < 1 for b in backoff_values):
            raise InputError(f"--backoffs must all be >= 1, got {backoffs!r}")
        run_tune(
            files,
            png=png,
            profile=write_profile,
            delays=delay_values,
            floors=floor_values,
            backoffs=backoff_values,
        )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("out"),
    scenario: Annotated[
        str, typer.Option("--scenario", help="Built-in scenario name or a scenario YAML file.")
    ] = "reference_conversation",
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", help="Latency profile: reference, slow, fast, or a YAML/JSON file."
        ),
    ] = None,
    rag: Annotated[
        str,
        typer.Option(
            "--rag",
            help=(
                "Where the bot retrieves the sample document from: local (embedded store in "
                "OUT/rag_store), pinecone (Pinecone stand-in via the pinecone SDK), none."
            ),
        ),
    ] = "local",
):
    """Run the speculative bot offline on the built-in conversation; print waterfalls."""
    import asyncio

    from pipecat_speculative.demo import run_demo

    with _user_errors():
        _check_scenario(scenario)
        _check_profile(profile)
        if rag not in ("local", "pinecone", "none"):
            raise InputError(f"--rag must be local, pinecone or none, not {rag!r}")
    asyncio.run(run_demo(out_dir=out, scenario=scenario, profile_path=profile, rag=rag))


@app.command()
def bench(
    scenarios: Annotated[
        Path | None,
        typer.Option("--scenarios", exists=True, file_okay=False, help="Scenario directory."),
    ] = None,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            help=(
                "Latency profile: reference, slow, fast, or a YAML/JSON file; repeat for several. "
                "Default: all three (reference only with --quick)."
            ),
        ),
    ] = None,
    sessions: Annotated[
        int, typer.Option("--sessions", min=1, help="Concurrent sessions per system.")
    ] = 1,
    quick: Annotated[
        bool, typer.Option("--quick", help="A subset that runs in under 60 s.")
    ] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    no_warm: Annotated[bool, typer.Option("--no-warm", help="Do not warm connections.")] = False,
    no_rag: Annotated[
        bool, typer.Option("--no-rag", help="No retrieval (no system uses the sample document).")
    ] = False,
    returning_user: Annotated[
        bool,
        typer.Option(
            "--returning-user",
            help=(
                "A returning hesitant user instead: a first call teaches a stored profile, the "
                "next call runs without and with it (speculative only, no retrieval)."
            ),
        ),
    ] = False,
):
    """Compare stock, eager_flux and speculative on the same audio, one table per profile."""
    import asyncio

    from pipecat_speculative.bench import BenchOptions, run_bench
    from pipecat_speculative.scenarios.scenario import load_scenarios

    with _user_errors():
        if returning_user and (scenarios is not None or quick or sessions != 1):
            raise InputError(
                "--returning-user plays its own two calls: --scenarios, --quick and --sessions "
                "do not apply"
            )
        if scenarios is not None:
            load_scenarios(scenarios)
        _check_profile(profile)
    _offline_run_logging("WARNING")
    if returning_user:
        from pipecat_speculative.bench_returning_user import (
            ReturningUserOptions,
            run_returning_user_bench,
        )

        asyncio.run(
            run_returning_user_bench(
                ReturningUserOptions(
                    profiles=profile or None, json_path=json_path, warm_connections=not no_warm
                )
            )
        )
        return
    options = BenchOptions(
        scenarios_dir=scenarios,
        profiles=profile or None,
        sessions=sessions,
        quick=quick,
        json_path=json_path,
        warm=not no_warm,
        rag=not no_rag,
    )
    asyncio.run(run_bench(options))


@app.command()
def load(
    sessions: Annotated[
        str,
        typer.Option(
            "--sessions",
            help="Concurrent session counts, comma-separated, run one after the other.",
        ),
    ] = "1,10,25,50",
    system: Annotated[
        list[str] | None,
        typer.Option("--system", help="System to sweep; repeat. Default: speculative and stock."),
    ] = None,
    profile: Annotated[
        str, typer.Option("--profile", help="Latency profile: a name or a YAML/JSON file.")
    ] = "reference",
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", help="Built-in scenario; repeat. Default: the --quick pair."),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    no_prerender: Annotated[
        bool,
        typer.Option(
            "--no-prerender", help="Synthesize the bot's speech on demand (harness cost)."
        ),
    ] = False,
):
    """Concurrent sessions: added latency, false commits, CPU and RSS per session (bots only)."""
    import asyncio

    from pipecat_speculative.load import LoadOptions, run_load
    from pipecat_speculative.pipeline_builder import SystemKind

    with _user_errors():
        try:
            counts = [int(x) for x in sessions.split(",") if x.strip()]
        except ValueError:
            raise InputError(
                f"--sessions must be integers separated by commas, not {sessions!r}"
            ) from None
        if not counts or min(counts) < 1:
            raise InputError("--sessions: every count must be >= 1")
        valid = [k.value for k in SystemKind]
        if bad := [s for s in system or [] if s not in valid]:
            raise InputError(f"--system {bad[0]!r}: choose from {', '.join(valid)}")
        for name in scenario or []:
            _check_scenario(name)
        _check_profile(profile)
    _offline_run_logging("WARNING")
    options = LoadOptions(
        session_counts=counts,
        profile=profile,
        scenarios=scenario or None,
        json_path=json_path,
        prerender=not no_prerender,
    )
    if system:
        options.systems = [SystemKind(s) for s in system]
    asyncio.run(run_load(options))


@app.command()
def soak(
    turns: Annotated[int, typer.Option("--turns", min=1, help="User turns in the session.")] = 1000,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", min=1, help="Turns between checkpoints.")
    ] = 100,
    warmup_turns: Annotated[
        int, typer.Option("--warmup-turns", min=1, help="Turns before the verdict's baseline.")
    ] = 100,
    out: Annotated[Path, typer.Option("--out", help="Directory for the JSONL sink.")] = Path(
        "out/soak"
    ),
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    no_rag: Annotated[bool, typer.Option("--no-rag", help="No parallel RAG.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the scripted user.")] = 12,
):
    """One long scripted session through the plugin: memory, tasks and structure sizes."""
    import asyncio

    from pipecat_speculative.soak import SoakOptions, run_soak

    _offline_run_logging("ERROR")
    options = SoakOptions(
        turns=turns,
        checkpoint_every=checkpoint_every,
        warmup_turns=min(warmup_turns, turns),
        seed=seed,
        out_dir=out,
        json_path=json_path,
        rag=not no_rag,
    )
    asyncio.run(run_soak(options))


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Text or markdown files, or directories of them.")
    ],
    store: Annotated[
        Path | None,
        typer.Option("--store", file_okay=False, help="Local store directory (default rag_store)."),
    ] = None,
    pinecone_index: Annotated[
        str | None,
        typer.Option("--pinecone-index", help="Pinecone index host; key from PINECONE_API_KEY."),
    ] = None,
    namespace: Annotated[str, typer.Option("--namespace", help="Pinecone namespace.")] = "",
):
    """Chunk, embed (local MiniLM) and store documents; re-runs write only what changed."""
    import os

    from pipecat_speculative.rag.ingest import run_ingest

    code = run_ingest(
        paths,
        store=store,
        pinecone_index=pinecone_index,
        namespace=namespace,
        api_key=os.environ.get("PINECONE_API_KEY"),
    )
    raise typer.Exit(code)


def main():
    """Entry point of the ``pipecat-speculative`` script."""
    app()


if __name__ == "__main__":
    main()
