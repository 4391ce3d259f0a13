"""The Python API of the export step: checkpoint -> float GGUF -> quantized GGUF(s)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ondevice.gguf import read_header
from ondevice.paths import atomic_path, prepare_dir

from . import source as source_mod
from .errors import ConversionError
from .hparams import load_config, parse_llama_config
from .quantizer import FLOAT_FTYPES, human_size, quant_type, quantize as _quantize
from .safetensors_reader import SafetensorsCheckpoint
from .tokenizer import load_tokenizer
from .writer import FINGERPRINT_KEY, OUTTYPES, ModelInfo, plan_tensors, write_gguf

CONVERTER_VERSION = "ondevice-convert-1"


@dataclass
class ConversionResult:
    """Output paths, sizes (bytes) and stage timings (seconds), keyed by type (F16, Q4_K_M, ...)."""

    paths: dict[str, Path] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # outputs already up to date (no-op)
    fingerprint: str = ""
    name: str = ""
    float_path: Optional[Path] = None  # where the float GGUF is (or would be) written


def read_fingerprint(gguf_path: Path) -> tuple[Optional[str], Optional[int]]:
    """(fingerprint, general.file_type) stored in a GGUF, or (None, None) if unreadable."""
    try:
        kv = read_header(gguf_path, keys=(FINGERPRINT_KEY, "general.file_type"), tensors=False).kv
    except (OSError, ValueError, KeyError, UnicodeError):
        return None, None
    ft = kv.get("general.file_type")
    return kv.get(FINGERPRINT_KEY), int(ft) if ft is not None else None


def owns(path: Path, fingerprint: str) -> bool:
    """Whether `path` is a GGUF this conversion wrote (it carries the inputs' fingerprint): the only
    files the export step ever deletes."""
    return path.is_file() and read_fingerprint(path)[0] == fingerprint


def _up_to_date(path: Path, fingerprint: str, ftype: int) -> bool:
    return path.is_file() and read_fingerprint(path) == (fingerprint, ftype)


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def convert_checkpoint(
    source: str | Path,
    out_dir: str | Path,
    quant: Optional[str | Sequence[str]] = "Q4_K_M",
    outtype: str = "f16",
    force: bool = False,
    revision: Optional[str] = None,
    name: Optional[str] = None,
    keep_float: bool = True,
    progress: bool = True,
    nthread: Optional[int] = None,
    hub_cache_dir: Optional[Path] = None,
) -> ConversionResult:
    """Convert a Llama safetensors checkpoint (directory or hub repo id) to GGUF and quantize it.

    Writes `<out_dir>/<name>.<OUTTYPE>.gguf` and `<out_dir>/<name>.<QUANT>.gguf` for each quant
    (quant=None: float GGUF only). Every output is written to a temp file and renamed. Outputs whose
    stored input fingerprint matches are left alone (a no-op) unless force=True. keep_float=False
    deletes the float GGUF once all quantized files exist.
    """
    outtype = outtype.lower()
    if outtype not in OUTTYPES:
        raise ConversionError(f"expected --outtype one of {', '.join(OUTTYPES)}, got {outtype!r}")
    quants = [] if quant is None else [quant] if isinstance(quant, str) else list(quant)
    qtypes = [quant_type(q) for q in quants]  # unknown quant -> error before any work
    result = ConversionResult()
    t0 = time.perf_counter()
    src = source_mod.resolve(source, revision=revision, cache_dir=hub_cache_dir)
    result.timings["resolve"] = time.perf_counter() - t0
    name = name or src.name
    out_dir = Path(out_dir)
    fp = source_mod.fingerprint(src, outtype, CONVERTER_VERSION)
    result.fingerprint = fp

    # validate everything cheap before writing anything
    config = load_config(src.directory)
    hp = parse_llama_config(config)
    tok = load_tokenizer(src.directory, config, hp.vocab_size)
    ckpt = SafetensorsCheckpoint(src.directory)
    n_tensors = len(plan_tensors(ckpt, hp, outtype))  # missing tensors / wrong shapes fail here

    float_key = outtype.upper()
    float_path = out_dir / f"{name}.{float_key}.gguf"
    result.name, result.float_path = name, float_path
    quant_paths = {qt.name: out_dir / f"{name}.{qt.name}.gguf" for qt in qtypes}
    pending = [qt for qt in qtypes if force or not _up_to_date(quant_paths[qt.name], fp, qt.ftype)]
    result.skipped += [qt.name for qt in qtypes if qt not in pending]
    need_float = not quants or bool(pending)
    prepare_dir(out_dir, "output directory")
    if not force:  # never replace a file someone else put under our output name
        for path in [quant_paths[qt.name] for qt in pending] + ([float_path] if need_float else []):
            if path.exists() and read_fingerprint(path)[0] is None:
                raise ConversionError(
                    f"{path} exists and was not written by ondevice convert (it has no {FINGERPRINT_KEY}): "
                    "move it away, pass another --out or --name, or --force to replace it"
                )

    if need_float:
        if not force and _up_to_date(float_path, fp, FLOAT_FTYPES[float_key]):
            result.skipped.append(float_key)
        else:
            info = ModelInfo(name=name, source_repo=src.repo_id, revision=src.revision,
                             license=src.license, fingerprint=fp)
            _log(progress, f"converting {src.directory} -> {float_path.name} ({outtype})")
            t = time.perf_counter()
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=n_tensors, desc=f"write {float_key}", unit="tensor", file=sys.stderr)
            try:
                with atomic_path(float_path) as tmp:
                    write_gguf(ckpt, hp, tok, info, tmp, outtype,
                               on_tensor=(lambda n, b: bar.update(1)) if bar is not None else None)
            finally:
                if bar is not None:
                    bar.close()
            result.timings["convert"] = time.perf_counter() - t
        result.paths[float_key] = float_path
        result.sizes[float_key] = float_path.stat().st_size
        _log(progress, f"  {float_path} {human_size(result.sizes[float_key])}")

    for qt in qtypes:
        path = quant_paths[qt.name]
        if qt in pending:
            t = time.perf_counter()
            _quantize(float_path, path, qt.name, nthread=nthread, progress=progress)
            result.timings[f"quantize_{qt.name}"] = time.perf_counter() - t
        result.paths[qt.name] = path
        result.sizes[qt.name] = path.stat().st_size
        state = "up to date" if qt not in pending else "written"
        _log(progress, f"  {path} {human_size(result.sizes[qt.name])} ({state})")

    if quants and not keep_float and owns(float_path, fp):
        float_path.unlink()
        result.paths.pop(float_key, None)
        result.sizes.pop(float_key, None)
    result.timings["total"] = time.perf_counter() - t0
    return result


def quantize(src_gguf: str | Path, dst_gguf: str | Path, quant: str, nthread: Optional[int] = None,
             progress: bool = True) -> int:
    """Quantize a float GGUF with llama.cpp (atomic). Returns the size of the result in bytes."""
    return _quantize(Path(src_gguf), Path(dst_gguf), quant, nthread=nthread, progress=progress)
