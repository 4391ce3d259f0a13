"""Fetch a checkpoint from the Hugging Face hub: only the files conversion needs, local cache first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .errors import ConversionError, MissingFileError

# Everything conversion reads; weights only as safetensors (never *.bin / *.pth / original/ dumps).
NEEDED_FILES: list[str] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    "README.md",
    "LICENSE*",
]


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download(repo_id: str, revision: Optional[str] = None, cache_dir: Optional[Path] = None) -> Path:
    """Snapshot directory of repo_id@revision with NEEDED_FILES: from the local cache when it is
    there, else downloaded (unless HF_HUB_OFFLINE=1, which makes a cache miss an error)."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - huggingface-hub is a dependency
        raise ConversionError("converting a hub repo needs huggingface-hub: pip install huggingface-hub") from exc
    # huggingface_hub reads HF_HUB_CACHE at import time; read it per call so it can be changed.
    cache_dir = cache_dir or (Path(os.environ["HF_HUB_CACHE"]) if os.environ.get("HF_HUB_CACHE") else None)
    kwargs = dict(repo_id=repo_id, revision=revision, allow_patterns=NEEDED_FILES,
                  cache_dir=str(cache_dir) if cache_dir else None)
    try:
        snap = Path(snapshot_download(local_files_only=True, **kwargs))
        if _complete(snap) or is_offline():
            return snap  # (an incomplete offline snapshot fails later, naming the missing file)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as cached_miss:
        if is_offline():
            raise MissingFileError(
                f"{repo_id}@{revision or 'main'} is not in the local Hugging Face cache and "
                "HF_HUB_OFFLINE=1 forbids downloading it: unset HF_HUB_OFFLINE, or pass a local "
                "checkpoint directory instead"
            ) from cached_miss
    try:
        return Path(snapshot_download(**kwargs))
    except Exception as exc:
        raise ConversionError(
            f"could not download {repo_id}@{revision or 'main'} from the Hugging Face hub: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _complete(snap: Path) -> bool:
    """A cached snapshot holds config, tokenizer and weights (not just what an earlier run fetched)."""
    has_weights = (snap / "model.safetensors").is_file() or (snap / "model.safetensors.index.json").is_file()
    return has_weights and (snap / "config.json").is_file() and (snap / "tokenizer.json").is_file()


def looks_like_repo_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "/", "~"))
