"""Where ondevice keeps its files: one cache directory, overridable with ONDEVICE_HOME."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent  # the source checkout, when ondevice runs from one (editable install)


def _shipped(installed: str, checkout: str) -> Path:
    """A data folder of the package: `ondevice/<installed>/` in a wheel, `<checkout>/` in a source checkout.

    pyproject.toml maps the repository's folder into the package at build time (package-dir), so an
    installed wheel holds the first and an editable install or a checkout finds the second.
    """
    inside = PACKAGE_DIR / installed
    return inside if inside.is_dir() else REPO_ROOT / checkout


def manifest_dir() -> Path:
    """The model manifests (models/*.json in the repository), one per alias."""
    return _shipped("_manifests", "models")


def examples_dir() -> Path:
    """The card's examples (examples/<name>/tools.json and case.json in the repository)."""
    return _shipped("_examples", "examples")


def home() -> Path:
    """The cache root: $ONDEVICE_HOME, else $XDG_CACHE_HOME/ondevice, else ~/.cache/ondevice."""
    env = os.environ.get("ONDEVICE_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ondevice"


def models_dir() -> Path:
    """Converted models live here: models_dir()/<alias>/<alias>.<QUANT>.gguf."""
    return home() / "models"


def assets_dir() -> Path:
    """Downloaded test/bench assets (tokenizers, random checkpoints) live here."""
    return home() / "assets"


def prefix_cache_dir() -> Path:
    """The CLI's on-disk prefix cache (evaluated tool prefixes as KV snapshots)."""
    return home() / "prefix-cache"


def converted_model_path(alias: str, quant: str) -> Path:
    """The path `ondevice pull ALIAS` writes and `ondevice call --model ALIAS` reads."""
    return models_dir() / alias / f"{alias}.{quant.upper()}.gguf"


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temp path beside `final`; rename it into place only if the block succeeds.

    Nothing half-written is ever left under the final name, and the temp file is removed on error.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
