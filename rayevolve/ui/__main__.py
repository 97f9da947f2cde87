"""``python -m rayevolve.ui RUN_OR_SWEEP_DIR [--port N]``: the live web view of a run or a
sweep (it follows a run that is still writing)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rayevolve.ui", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "path", help="a run directory or a sweep directory (it may still be running)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8050, help="port (default 8050; 0 picks a free one)"
    )
    parser.add_argument(
        "--refresh", type=float, default=2.0, help="seconds between reloads of the log"
    )
    args = parser.parse_args(argv)
    if not Path(args.path).is_dir():
        print(
            f"rayevolve ui: {args.path} is not a folder (give a run or sweep directory)",
            file=sys.stderr,
        )
        return 1
    from rayevolve.log.readers import find_runs

    if not find_runs(args.path) and not list(Path(args.path).glob("**/run_id")):
        print(
            f"rayevolve ui: {args.path} holds no rayevolve run (no run log below it); give a "
            "run directory (runs/<date>_<task>) or a sweep directory",
            file=sys.stderr,
        )
        return 1
    if args.refresh <= 0:
        print("rayevolve ui: --refresh must be > 0 seconds", file=sys.stderr)
        return 2
    from rayevolve.ui.server import UiServer

    try:
        server = UiServer(args.path, args.host, args.port, args.refresh)
    except OSError as exc:
        print(f"rayevolve ui: {exc}", file=sys.stderr)
        return 1
    print(f"rayevolve ui: {server.url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
