"""Serving the web view: in the foreground (``python -m rayevolve.ui``) or from a thread
of the driver while a run goes (``ui.port``)."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

from werkzeug.serving import make_server

from rayevolve.ui.app import make_app


class UiServer:
    """The web view of `path` on `host`:`port` (0: a free port), until `close()`."""

    def __init__(self, path: str | Path, host: str = "127.0.0.1", port: int = 0, refresh_s=2.0):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        app = make_app(path, refresh_s)
        where = f"cannot serve the web view on {host}:{port}"
        if port:  # werkzeug says a busy port on stderr and exits: find out first
            with socket.socket() as probe:
                try:
                    probe.bind((host, port))
                except OSError as exc:
                    raise OSError(f"{where}: {exc.strerror or exc}") from None
        try:
            self._server = make_server(host, port, app.server, threaded=True)
        except (OSError, SystemExit) as exc:
            raise OSError(f"{where}: {getattr(exc, 'strerror', None) or exc}") from None
        self.url = f"http://{host}:{self._server.server_port}/"
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self) -> UiServer:
        """Serve from a daemon thread (the driver's)."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="rayevolve-ui", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:  # serving from a thread: stop its loop first
            self._server.shutdown()
        self._server.server_close()
