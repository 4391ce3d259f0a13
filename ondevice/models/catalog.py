"""Model resolution: a path to a .gguf, an alias from models/*.json, or a hub repo id.

Without a model spec: $ONDEVICE_MODEL when set (the tests pin the stand-in so); else the converted
fine-tune when `ondevice pull` has put it in the cache; else the best tool-calling model installed
(DEFAULT_ORDER, measured on BFCL: Qwen2.5-Coder-0.5B when its PyPI chunks are installed); else the
embedded stand-in. Anything but the fine-tune comes with a one-line note on stderr saying how to get it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .assets import STANDIN_ALIAS, chunked_gguf_path, standin_gguf_path
from ..errors import ModelNotFoundError
from ..paths import converted_model_path, manifest_dir, models_dir

REFERENCE_ALIAS = "llama-3.2-1b-apigen-fc"
QWEN_ALIAS = "qwen2.5-coder-0.5b-instruct"
# The default's order of preference: the fine-tune, then the models trained for tool calls, best first
# (Qwen2.5-Coder-0.5B: BFCL bench/results/, the README's first command right), then the stand-in.
DEFAULT_ORDER = (REFERENCE_ALIAS, QWEN_ALIAS)
MODEL_ENV = "ONDEVICE_MODEL"


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model spec led: the GGUF file and, when known, its alias."""

    path: Path
    alias: Optional[str] = None
    note: Optional[str] = None  # printed on stderr by the CLI (e.g. "using the stand-in")


def manifests() -> dict[str, dict]:
    """Every model manifest (models/*.json, shipped in the package), by alias."""
    found = {}
    for path in sorted(manifest_dir().glob("*.json")):
        data = json.loads(path.read_text())
        found[data["alias"]] = data
    return found


def _split_quant(spec: str) -> tuple[str, Optional[str]]:
    # "alias:Q8_0" or "owner/repo:Q4_K_M" picks a quantization.
    if ":" in spec and not os.path.exists(spec):
        name, quant = spec.rsplit(":", 1)
        if quant and "/" not in quant:
            return name, quant.upper()
    return spec, None


def _converted(alias: str, manifest: dict, quant: Optional[str]) -> Optional[Path]:
    wanted = quant or manifest.get("default_quant", "Q4_K_M")
    path = converted_model_path(alias, wanted)
    if path.is_file():
        return path
    if quant is None:  # any quant that was pulled will do
        others = sorted((models_dir() / alias).glob(f"{alias}.*.gguf"))
        if others:
            return others[0]
    return None


def resolve(spec: Optional[str] = None) -> ResolvedModel:
    """Turn a model spec into a GGUF path; raises ModelNotFoundError saying what would work."""
    known = manifests()
    if not spec and os.environ.get(MODEL_ENV):
        pinned = resolve(os.environ[MODEL_ENV])
        return ResolvedModel(pinned.path, pinned.alias, _STANDIN_NOTE) if pinned.alias == STANDIN_ALIAS else pinned
    if spec is None or spec == "":
        best = default_alias(known)
        if best == REFERENCE_ALIAS:
            return ResolvedModel(_converted(REFERENCE_ALIAS, known[REFERENCE_ALIAS], None), REFERENCE_ALIAS)
        if best is not None:
            return ResolvedModel(resolve(best).path, best, note=(
                f"ondevice: using {best}, the best tool-calling model installed; "
                f"get the fine-tune with: ondevice pull {REFERENCE_ALIAS}"))
        return ResolvedModel(standin_gguf_path(), STANDIN_ALIAS, note=_STANDIN_NOTE)

    name, quant = _split_quant(spec)
    path = Path(name).expanduser()
    if name.endswith(".gguf") or path.exists() or name.startswith((".", "/", "~")):
        if not path.is_file():
            raise ModelNotFoundError(f"model file not found: {path}")
        return ResolvedModel(path.resolve())

    if name in known:
        manifest = known[name]
        if name == STANDIN_ALIAS:
            return ResolvedModel(standin_gguf_path(), name)
        if "pypi_chunks" in manifest.get("source", {}):
            return ResolvedModel(chunked_gguf_path(name, manifest), name)
        converted = _converted(name, manifest, quant)
        if converted is None:
            wanted = quant or manifest.get("default_quant", "Q4_K_M")
            raise ModelNotFoundError(
                f"model {name!r} ({wanted}) is not converted locally: run `ondevice pull {name}"
                f"{' --quant ' + wanted if quant else ''}` (it downloads and converts "
                f"{manifest['source'].get('hub_repo', name)})"
            )
        return ResolvedModel(converted, name)

    for alias, manifest in known.items():  # a repo id we have a manifest for: use its conversion
        if manifest.get("source", {}).get("hub_repo") == name:
            converted = _converted(alias, manifest, quant)
            if converted is not None:
                return ResolvedModel(converted, alias)

    if name.count("/") == 1 and not name.startswith("/"):
        return ResolvedModel(_from_hub(name, quant))

    raise ModelNotFoundError(
        f"unknown model {spec!r}: expected a path to a .gguf file, a hub repo id (owner/name), "
        f"or one of the aliases {sorted(known)} (see `ondevice models`)"
    )


_STANDIN_NOTE = (f"ondevice: using the stand-in {STANDIN_ALIAS} (not trained for tool calling); "
                 f"get the fine-tune with: ondevice pull {REFERENCE_ALIAS}")


def installed(alias: str, manifest: dict) -> bool:
    """Whether a model is here without a download: converted in the cache, or its PyPI chunks installed."""
    if _converted(alias, manifest, None) is not None:
        return True
    chunks = manifest.get("source", {}).get("pypi_chunks")
    if not chunks:
        return False
    from importlib import metadata

    try:
        return all(metadata.version(c["package"]) == c["version"] for c in chunks)
    except metadata.PackageNotFoundError:
        return False


def default_alias(known: Optional[dict[str, dict]] = None) -> Optional[str]:
    """The model used without --model (before the stand-in): the first of DEFAULT_ORDER installed, or None."""
    known = manifests() if known is None else known
    return next((a for a in DEFAULT_ORDER if a in known and installed(a, known[a])), None)


def _from_hub(repo_id: str, quant: Optional[str]) -> Path:
    """A GGUF from a hub repo: the local cache first; the network only when not offline."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

    pattern = f"*{quant}*.gguf" if quant else "*.gguf"
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    attempts = [True] if offline else [True, False]
    last_error: Exception | None = None
    for local_only in attempts:
        try:
            folder = Path(snapshot_download(repo_id, allow_patterns=[pattern], local_files_only=local_only))
        except HFValidationError as exc:
            raise ModelNotFoundError(f"{repo_id!r} is not a valid hub repo id: {exc}") from None
        except RepositoryNotFoundError:
            raise ModelNotFoundError(f"hub repo {repo_id!r} not found (or private: log in with `hf auth login`)") from None
        except LocalEntryNotFoundError as exc:
            last_error = exc
            continue
        except Exception as exc:  # network failures surface as several exception types
            last_error = exc
            continue
        ggufs = sorted(folder.rglob(pattern))
        if ggufs:
            if len(ggufs) > 1 and quant is None:
                names = ", ".join(p.name for p in ggufs)
                raise ModelNotFoundError(f"{repo_id} has several GGUF files ({names}): pick one with {repo_id}:QUANT")
            return ggufs[0]
        if not local_only or offline:
            break
    where = "in the local hub cache (offline mode is on)" if offline else "locally or on the hub"
    hint = (
        f"if it holds safetensors, convert it: `ondevice convert {repo_id} --quant Q4_K_M`"
        if quant is None else f"check the quantization name {quant}"
    )
    raise ModelNotFoundError(f"no GGUF file matching {pattern!r} for {repo_id} {where}: {hint}" + (
        f" ({type(last_error).__name__})" if last_error else ""))
