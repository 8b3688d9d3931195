"""The ``pipecat-speculative`` command. Commands stay thin: each delegates to its module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="pipecat-speculative",
    help="Speculative turns, adaptive debounce and trustworthy turn timing for Pipecat.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root():
    """Speculative turns, adaptive debounce and trustworthy turn timing for Pipecat."""


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

    run_report(file, png=png)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("out"),
    scenario: Annotated[
        str, typer.Option("--scenario", help="Built-in scenario name or a scenario YAML file.")
    ] = "reference_conversation",
    profile: Annotated[
        Path | None,
        typer.Option("--profile", exists=True, dir_okay=False, help="Latency profile file."),
    ] = None,
):
    """Run the speculative bot offline on the built-in conversation; print waterfalls."""
    import asyncio

    from pipecat_speculative.demo import run_demo

    asyncio.run(run_demo(out_dir=out, scenario=scenario, profile_path=profile))


@app.command()
def bench(
    scenarios: Annotated[
        Path | None,
        typer.Option("--scenarios", exists=True, file_okay=False, help="Scenario directory."),
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option("--profile", exists=True, dir_okay=False, help="Latency profile file."),
    ] = None,
    sessions: Annotated[
        int, typer.Option("--sessions", min=1, help="Concurrent sessions per system.")
    ] = 1,
    quick: Annotated[
        bool, typer.Option("--quick", help="A subset that runs in under 60 s.")
    ] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    no_warm: Annotated[bool, typer.Option("--no-warm", help="Do not warm connections.")] = False,
):
    """Compare stock, eager_flux and speculative on the same audio and latency profile."""
    import asyncio
    import sys

    from loguru import logger

    from pipecat_speculative.bench import BenchOptions, run_bench
    from pipecat_speculative.offline_session import quiet_standin_server_errors

    quiet_standin_server_errors()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    options = BenchOptions(
        scenarios_dir=scenarios,
        profile_path=profile,
        sessions=sessions,
        quick=quick,
        json_path=json_path,
        warm=not no_warm,
    )
    asyncio.run(run_bench(options))


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
