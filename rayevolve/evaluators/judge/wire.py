"""What crosses between the judge and its candidate process: data that cannot carry code.

A message is a JSON header and, after it, the raw bytes of the numeric arrays it lists
(``{"arrays": [{"dtype": "float32", "shape": [..]}, ...]}``): JSON is parsed, never
evaluated; arrays are ``numpy.frombuffer`` of a dtype from a short list. No pickle, no
object that can name a callable. Sizes are bounded on reading, so a process that writes
a huge or endless message fails the read instead of filling the reader's memory.

Framing: 4 bytes of header length (big-endian), the header, then each array's bytes.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time

import numpy as np

DTYPES = ("float32", "float64", "int32", "int64", "uint8")
MAX_HEADER_BYTES = 16 << 20
MAX_ARRAY_BYTES = 4 << 30  # the arrays of one message, in all


class WireError(Exception):
    """A message that is not data of the agreed shape (or a peer that went away)."""


class WireTimeout(WireError):
    """No whole message arrived before the deadline."""


def encode(header: dict, arrays: list[np.ndarray] = ()) -> bytes:
    arrays = [np.ascontiguousarray(a) for a in arrays]
    for a in arrays:
        if a.dtype.name not in DTYPES:
            raise WireError(f"array of dtype {a.dtype} cannot be sent (only {DTYPES})")
    header = {**header, "arrays": [{"dtype": a.dtype.name, "shape": list(a.shape)} for a in arrays]}
    text = json.dumps(header, allow_nan=True).encode()
    return b"".join([struct.pack(">I", len(text)), text, *(a.tobytes() for a in arrays)])


def _read_exactly(fd: int, count: int, deadline: float | None) -> bytes:
    chunks, left = [], count
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise WireTimeout("no answer in time")
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise WireError("the other side closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read(fd: int, deadline: float | None = None) -> tuple[dict, list[np.ndarray]]:
    """One message from `fd`: (header, arrays). `WireError` for anything malformed."""
    (length,) = struct.unpack(">I", _read_exactly(fd, 4, deadline))
    if length > MAX_HEADER_BYTES:
        raise WireError(f"a header of {length} bytes (at most {MAX_HEADER_BYTES})")
    try:
        header = json.loads(_read_exactly(fd, length, deadline))
    except ValueError as exc:
        raise WireError(f"the header is not JSON: {exc}") from None
    specs = header.get("arrays") if isinstance(header, dict) else None
    if not isinstance(specs, list):
        raise WireError("the header is not a message (no list of arrays)")
    sizes = []
    for spec in specs:
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if (
            spec.get("dtype") not in DTYPES
            or not isinstance(shape, list)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        ):
            raise WireError(f"an array described as {spec!r:.200}")
        sizes.append(int(np.prod(shape, dtype=np.int64)) * np.dtype(spec["dtype"]).itemsize)
    if sum(sizes) > MAX_ARRAY_BYTES:
        raise WireError(f"{sum(sizes)} bytes of arrays (at most {MAX_ARRAY_BYTES})")
    arrays = [
        np.frombuffer(_read_exactly(fd, size, deadline), dtype=spec["dtype"]).reshape(spec["shape"])
        for spec, size in zip(specs, sizes, strict=True)
    ]
    return header, arrays


def write(fd: int, header: dict, arrays: list[np.ndarray] = ()) -> None:
    data = memoryview(encode(header, arrays))
    while data:
        data = data[os.write(fd, data) :]
