"""``python -m pipecat_speculative`` and the ``pipecat-speculative`` script.

The command line needs the ``cli`` extra (typer, rich, pyyaml, matplotlib, numpy), which a bot
does not. This entry point checks for it before importing the command module, so a lean install
gets one line saying what to install instead of an ``ImportError`` traceback.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec

__all__ = ["CLI_REQUIREMENTS", "main", "missing_cli_requirements"]

CLI_REQUIREMENTS: dict[str, str] = {
    "typer": "typer",
    "rich": "rich",
    "yaml": "pyyaml",
    "matplotlib": "matplotlib",
    "numpy": "numpy",
}
"""Modules the command line imports, mapped to the distribution that provides each."""


def missing_cli_requirements() -> list[str]:
    """The distributions of the ``cli`` extra that are not installed, in a stable order."""
    return [dist for module, dist in CLI_REQUIREMENTS.items() if not _importable(module)]


def _importable(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install counts as missing
        return False


def main() -> None:
    """Run the command line, or exit 2 naming the extra to install when it is missing."""
    missing = missing_cli_requirements()
    if missing:
        sys.stderr.write(
            f"pipecat-speculative: the command line needs {', '.join(missing)}, which a lean "
            "install leaves out.\n"
            "Install the extra: pip install 'pipecat-speculative[cli]'\n"
        )
        raise SystemExit(2)
    from pipecat_speculative.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
