"""Where ondevice keeps its files: one cache directory, overridable with ONDEVICE_HOME."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import DirectoryError

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


def converted_model_path(alias: str, quant: str) -> Path:
    """The path `ondevice pull ALIAS` writes and `ondevice call --model ALIAS` reads."""
    return models_dir() / alias / f"{alias}.{quant.upper()}.gguf"


def prefix_cache_dir() -> Path:
    """The default folder of the on-disk prefix cache (KV snapshots of evaluated tool prefixes)."""
    return home() / "prefix-cache"


def prepare_dir(directory: str | os.PathLike, what: str) -> Path:
    """Create `directory` (and parents) if needed; DirectoryError saying what to do when it is a file
    or cannot be written."""
    path = Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DirectoryError(f"{what} {path} is a file, not a directory: pass a directory") from None
    except NotADirectoryError:
        raise DirectoryError(f"{what} {path}: a parent of it is a file, not a directory: pass another path") from None
    except OSError as exc:
        raise DirectoryError(f"cannot create {what} {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DirectoryError(f"{what} {path} is not writable: fix its permissions or pass another directory")
    return path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (os.umask can only swap it)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temp path beside `final`; rename it into place only if the block succeeds.

    Nothing half-written is ever left under the final name, and the temp file is removed on error
    (an interrupt included). The file gets the mode a plain open() would give it (0666 less the
    umask), not mkstemp's 0600, so others sharing a cache can read it.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, final)
    finally:
        try:
            tmp_path.unlink()
        except FileNotFoundError:
            pass
