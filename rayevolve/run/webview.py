"""The live web view of a run (``ui.port``), served from a thread of the driver until
the run ends."""

from __future__ import annotations

import sys
from pathlib import Path

from rayevolve.config import UiConfig
from rayevolve.run.errors import RunError


def serve(ui: UiConfig, run_dir: Path):
    """The started server, or None when not asked for; a missing package or a port in
    use is a `RunError` that says what to do."""
    if ui.port is None:
        return None
    try:
        from rayevolve.ui.server import UiServer
    except ImportError as exc:
        raise RunError(
            f"ui.port={ui.port} needs the web view's packages ({exc.name} is missing): "
            "pip install 'rayevolve[ui]'"
        ) from None
    try:
        server = UiServer(run_dir, ui.host, ui.port, ui.refresh_s).start()
    except OSError as exc:
        raise RunError(f"ui.port={ui.port}: {exc}; choose another port (0: any free one)") from None
    print(f"rayevolve: live view of this run at {server.url}", file=sys.stderr, flush=True)
    return server
