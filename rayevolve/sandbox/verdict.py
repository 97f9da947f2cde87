"""The verdict channel: how the judging process tells its supervisor what it decided.

The judge (the sandboxed child that runs the task's evaluator) writes newline-delimited
JSON messages to a pipe whose write end only it holds: file descriptor `VERDICT_FD`
under the fork server, or the number named in the spec under `spawn`. Nothing else is
believed: no file, no output stream. Every process forked by the judge loses the
descriptor before any of its own code runs (see `child.py`), and the judge is not
dumpable, so no other process of the same user can reach it through ``/proc``.

Two kinds of message:

* ``{"taint": REASON}``: the judging process opened or executed the candidate's own
  program (OpenEvolve's in-process convention). Sent by an audit hook at that moment,
  before a line of the candidate runs, so the candidate cannot take it back: its row is
  marked ``in_process`` whatever it writes afterwards.
* ``{"verdict": {...}}``: the outcome (status, score, stage, metrics, artifacts), once.

Standard library only: the child and the fork server import it by path (and it the
ground floor's caps, `rayevolve/textcaps.py`).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
from dataclasses import dataclass, field

if __package__:
    from rayevolve.textcaps import as_text, cap_artifacts
else:  # imported by path beside child.py: the ground floor's caps, by path too
    _path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "textcaps.py")
    _spec = importlib.util.spec_from_file_location("rayevolve_textcaps", _path)
    _caps = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_caps)
    as_text, cap_artifacts = _caps.as_text, _caps.cap_artifacts

__all__ = ["VERDICT_FD", "as_text", "cap_artifacts", "parse"]  # the caps, for child.py

VERDICT_FD = 3
MAX_CHANNEL_BYTES = 4 << 20  # a judge's messages; more is cut and the verdict refused


def message(**payload: object) -> bytes:
    return (json.dumps(payload, default=repr) + "\n").encode()


@dataclass
class Channel:
    """What a supervisor read from the channel."""

    tainted: list[str] = field(default_factory=list)
    verdicts: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> dict | None:
        """The one verdict, or None if there was none, or more than one, or garbage."""
        if self.problems or len(self.verdicts) != 1:
            return None
        return self.verdicts[0]

    def refusal(self) -> str | None:
        """Why the channel's content cannot be believed as a verdict, if it cannot."""
        if self.problems:
            return "; ".join(self.problems)
        if len(self.verdicts) > 1:
            return f"the judge sent {len(self.verdicts)} verdicts, not one"
        return None


def parse(data: bytes, truncated: bool = False) -> Channel:
    """The messages in `data` (what was read from the pipe)."""
    channel = Channel()
    if truncated:
        channel.problems.append(f"the judge wrote more than {MAX_CHANNEL_BYTES} bytes")
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            channel.problems.append("the verdict channel carried something that is not JSON")
            continue
        if not isinstance(item, dict):
            channel.problems.append("the verdict channel carried something that is not an object")
        elif "taint" in item:
            channel.tainted.append(as_text(item["taint"], 500))
        elif isinstance(item.get("verdict"), dict):
            channel.verdicts.append(item["verdict"])
        else:
            channel.problems.append("the verdict channel carried an unknown message")
    return channel


class PipeReader:
    """The supervisor's end of a verdict pipe: everything the judge wrote, up to
    `MAX_CHANNEL_BYTES` (the rest is dropped and `truncated` set), never blocking."""

    def __init__(self, fd: int):
        self.fd = fd
        self.data = bytearray()
        self.truncated = False
        self.closed = False
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)

    def drain(self) -> None:
        """Read what is there now (until end of file, if every writer is gone)."""
        while not self.closed:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                self.closed = True
                return
            room = MAX_CHANNEL_BYTES - len(self.data)
            self.truncated |= len(chunk) > room
            self.data += chunk[: max(room, 0)]
