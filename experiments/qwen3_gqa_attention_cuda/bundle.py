"""The offline bundle: what a GPU node without network needs to run rayevolve.

The GPU machines at hand have Python 3.12, PyTorch, Triton, numpy, pandas, pyarrow,
matplotlib, jinja2, tqdm and aiohttp, but neither network nor Ray, hydra-core,
omegaconf, openai or jsonschema. This script downloads (here, where PyPI is reachable)
the cp312 manylinux x86_64 wheels of what is missing, strips Ray's wheel of what a run
never imports (Java jars, the dashboard's source maps, RLlib, Tune, Serve, Train, Data,
AIR, LLM), and packs everything into one xz tarball small enough to travel with a
command (at most 64 MiB).

Usage: ``python experiments/qwen3_gqa_attention_cuda/bundle.py [--out DIR]``; then, on
the GPU node, ``run_on_gpu.sh`` installs it with ``pip install --no-index --find-links``
into a venv that sees the machine's own packages.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = "3.12"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
# what the GPU machines lack; their dependencies come along, but for those the machines
# have (PRESENT), which the bundle leaves out
WANTED = ("ray==2.60.0", "hydra-core==1.3.2", "omegaconf==2.3.0", "openai", "jsonschema")
PRESENT = ("numpy", "pandas", "pyarrow", "matplotlib", "jinja2", "markupsafe", "tqdm", "aiohttp")
PURE_SDISTS = (
    "antlr4-python3-runtime==4.9.3",
)  # omegaconf's parser: no wheel on PyPI, pure Python
RAY_DROPPED = (
    "ray/jars/",
    "ray/rllib/",
    "ray/tune/",
    "ray/serve/",
    "ray/train/",
    "ray/data/",
    "ray/air/",
    "ray/llm/",
    "ray/util/dask/",
)
PURE_SDISTS = (
    "antlr4-python3-runtime==4.9.3",
)  # omegaconf's parser: no wheel on PyPI, pure Python
LIMIT = 64 << 20


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def strip_ray(wheel: Path) -> Path:
    """Ray's wheel without the parts a run never imports; RECORD rewritten to match."""
    stripped = wheel.with_name(wheel.name)
    with zipfile.ZipFile(wheel) as source:
        kept = [
            info
            for info in source.infolist()
            if not info.filename.startswith(RAY_DROPPED)
            and not (info.filename.startswith("ray/dashboard/") and info.filename.endswith(".map"))
        ]
        contents = {info.filename: source.read(info) for info in kept}
        infos = {info.filename: info for info in kept}  # modes: raylet and gcs_server run
    record = next(name for name in contents if name.endswith(".dist-info/RECORD"))
    rows = io.StringIO()
    writer = csv.writer(rows)
    for name, data in contents.items():
        if name != record:
            writer.writerow([name, _record_hash(data), len(data)])
    writer.writerow([record, "", ""])
    contents[record] = rows.getvalue().encode()
    wheel.unlink()
    with zipfile.ZipFile(stripped, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in contents.items():
            target.writestr(infos.get(name, name), data)
    return stripped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(HERE.parents[1] / ".bundle"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheels = Path(tmp) / "wheels"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "-w",
                str(wheels),
                *PURE_SDISTS,
            ],
            check=True,
        )
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--python-version",
            PYTHON,
            "--implementation",
            "cp",
            "--find-links",
            str(wheels),
            "-d",
            str(wheels),
        ]
        for platform in PLATFORMS:
            command += ["--platform", platform]
        subprocess.run(command + list(WANTED), check=True)
        for wheel in wheels.glob("*.whl"):
            name = wheel.name.split("-")[0].lower().replace("_", "-")
            if name in PRESENT or name.replace("-", "_") in PRESENT:
                wheel.unlink()
        for wheel in wheels.glob("ray-*.whl"):
            strip_ray(wheel)
        tarball = out / "rayevolve-offline-cp312.tar.xz"
        with tarfile.open(tarball, "w:xz", preset=9) as archive:
            for wheel in sorted(wheels.iterdir()):
                archive.add(wheel, arcname=f"wheels/{wheel.name}")
        count = len(list(wheels.iterdir()))
    size = tarball.stat().st_size
    print(f"{tarball}: {size / 2**20:.1f} MiB ({count} wheels)")
    if size > LIMIT:
        raise SystemExit(f"the bundle is over {LIMIT >> 20} MiB: drop more of Ray's wheel")


if __name__ == "__main__":
    main()
