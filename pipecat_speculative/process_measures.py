"""What the load and soak commands read of their own process, and how they write their JSON."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["cpu_secs", "rss_bytes", "write_json_document"]


def rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc``; the peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_secs() -> float:
    """User + system CPU seconds of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_json_document(path: str | Path, document: dict[str, Any], console: Console) -> Path:
    """Write ``document`` as indented JSON (parents created) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {path}")
    return path
