"""Resolve SOURCE (a checkpoint directory or a hub repo id) into a local directory plus provenance."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import hub
from .errors import MissingFileError


@dataclass
class ResolvedSource:
    directory: Path
    repo_id: Optional[str]
    revision: Optional[str]  # the commit hash for hub sources
    license: Optional[str]
    name: str


def _license(directory: Path) -> Optional[str]:
    """The `license:` of the model card's YAML front matter, if any."""
    card = directory / "README.md"
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    front = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    m = re.search(r"^license:\s*(\S+)\s*$", front, re.M)
    return m.group(1).strip("'\"") if m else None


def resolve(source: str | Path, revision: Optional[str] = None, cache_dir: Optional[Path] = None) -> ResolvedSource:
    """A local directory is used as is; `org/name` goes through the Hugging Face cache/hub."""
    path = Path(source).expanduser()
    if path.is_dir():
        return ResolvedSource(path.resolve(), None, revision, _license(path), path.resolve().name)
    if hub.looks_like_repo_id(str(source)):
        snap = hub.download(str(source), revision=revision, cache_dir=cache_dir)
        commit = snap.name if re.fullmatch(r"[0-9a-f]{40}", snap.name) else revision
        return ResolvedSource(snap, str(source), commit, _license(snap), str(source).split("/")[1])
    raise MissingFileError(
        f"expected SOURCE to be a checkpoint directory or a hub repo id like org/name, got {str(source)!r} "
        "(no such directory)"
    )


def fingerprint(src: ResolvedSource, outtype: str, version: str) -> str:
    """Identity of the conversion inputs: small files by content, weights by name, size and mtime."""
    h = hashlib.sha256()
    h.update(json.dumps({"converter": version, "outtype": outtype, "repo": src.repo_id,
                         "revision": src.revision}, sort_keys=True).encode())
    for p in sorted(src.directory.iterdir()):
        if not p.is_file() or p.suffix not in (".json", ".safetensors", ".jinja"):
            continue
        st = p.stat()
        h.update(p.name.encode())
        if p.suffix == ".safetensors":
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        elif st.st_size < 64 * 1024 * 1024:
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:32]
