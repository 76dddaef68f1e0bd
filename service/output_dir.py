"""`ensure_output_dir`: the folder a command writes into exists and takes new files, checked
before any work, so that a path that is a file, lies under a file or is read-only ends the
command with one line naming it (OutputPathUnusable, exit 6)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from herald.errors import OutputPathUnusable


def ensure_output_dir(path: Path) -> None:
    """Create `path` (and its parents) if missing and check a file can be created in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # unnamed where the OS allows: nothing is left
            pass
    except OSError as exc:
        if isinstance(exc, FileExistsError):
            reason = "it is a file, not a folder"
        else:
            reason = (exc.strerror or type(exc).__name__).lower()
        raise OutputPathUnusable(f"cannot write the output folder: {reason}", str(path)) from exc
