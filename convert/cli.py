"""`ondevice convert` and `ondevice pull`: registered into the ondevice CLI through the `ondevice.commands` entry points."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ondevice import paths

from .errors import ConversionError
from .quantizer import QUANT_TYPES, human_size

REQUIRED_QUANTS = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0"]

CONVERT_EPILOG = """\
examples:
  ondevice convert ./Llama-3.2-1B-Instruct-APIGen-FC-v0.1 --quant Q4_K_M --out ./gguf
  ondevice convert argilla/Llama-3.2-1B-Instruct-APIGen-FC-v0.1 --revision main --quant Q4_K_M --quant Q8_0
  ondevice convert ./checkpoint --quant none --outtype bf16        # float GGUF only
  ondevice convert ./checkpoint --quant Q4_K_M --report            # per-tensor quantization error
  HF_HUB_OFFLINE=1 ondevice convert org/model                      # only from the local HF cache

Outputs are <out>/<name>.<TYPE>.gguf. Each is written to a temp file and renamed, so an
interrupted run leaves nothing half-written; a re-run with unchanged inputs is a no-op
unless --force.

quant types:
""" + "\n".join(f"  {q.name:8} {q.description}" for q in QUANT_TYPES.values())

PULL_EPILOG = """\
examples:
  ondevice pull llama-3.2-1b-apigen-fc                 # download + convert + quantize (default quant)
  ondevice pull llama-3.2-1b-apigen-fc --quant Q8_0
  ondevice pull llama-3.2-1b-apigen-fc --force         # redo even if up to date

Writes <ONDEVICE_HOME or ~/.cache/ondevice>/models/<alias>/<alias>.<QUANT>.gguf, where
`ondevice call --model <alias>` looks. Aliases are the models/*.json manifests.
"""


def register_convert(subparsers: argparse._SubParsersAction) -> None:
    """`ondevice convert` (the `ondevice.commands` entry point `convert`)."""
    p = subparsers.add_parser(
        "convert", help="convert a Hugging Face Llama checkpoint to (quantized) GGUF",
        description="Convert a BF16/F16/F32 Hugging Face Llama safetensors checkpoint (a directory or a "
                    "hub repo id) to GGUF and quantize it with llama.cpp's quantizer.",
        epilog=CONVERT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE", help="checkpoint directory or hub repo id (org/name)")
    p.add_argument("--quant", action="append", metavar="TYPE",
                   help="quantization type (repeatable; 'none' for the float GGUF only). Default: Q4_K_M")
    p.add_argument("--outtype", default="f16", choices=["f16", "bf16", "f32"],
                   help="type of the unquantized GGUF (default f16)")
    p.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="output directory (default .)")
    p.add_argument("--name", help="output file name stem (default: the checkpoint's name)")
    p.add_argument("--revision", help="hub revision (branch, tag or commit) to pin")
    p.add_argument("--force", action="store_true", help="rewrite outputs even if up to date")
    p.add_argument("--no-keep-float", action="store_true", help="delete the float GGUF after quantizing")
    p.add_argument("--report", action="store_true", help="print per-tensor quantization error")
    p.add_argument("--verify", action="store_true",
                   help="check GGUF tokenization against tokenizer.json (needs the tokenizers package)")
    p.add_argument("--threads", type=int, default=None, help="quantizer threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run_convert)


def register_pull(subparsers: argparse._SubParsersAction) -> None:
    """`ondevice pull` (the `ondevice.commands` entry point `pull`)."""
    q = subparsers.add_parser(
        "pull", help="download, convert and quantize a known model into the ondevice cache",
        description="Download a model listed in models/*.json from the Hugging Face hub, convert it and "
                    "quantize it into the ondevice model cache.",
        epilog=PULL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("alias", metavar="ALIAS", help="model alias (a models/*.json manifest)")
    q.add_argument("--quant", metavar="TYPE", help="quantization type (default: the manifest's default_quant)")
    q.add_argument("--revision", help="override the manifest's pinned revision")
    q.add_argument("--force", action="store_true", help="redo even if the converted model is up to date")
    q.add_argument("--report", action="store_true", help="print per-tensor quantization error")
    q.add_argument("--threads", type=int, default=None, help="quantizer threads (default: all cores)")
    q.add_argument("--quiet", action="store_true", help="no progress output")
    q.set_defaults(func=run_pull)


def _print_report(float_path: Path, quant_path: Path) -> None:
    from .report import format_report, quantization_errors

    print(f"quantization error of {quant_path.name} vs {float_path.name}:")
    print(format_report(quantization_errors(float_path, quant_path)))


def _require_export_dependencies() -> None:
    """Import the export extra's dependencies up front: `ondevice` turns a missing one into the pip command."""
    import gguf  # noqa: F401


def run_convert(args: argparse.Namespace) -> int:
    _require_export_dependencies()
    from .api import convert_checkpoint

    quants = args.quant or ["Q4_K_M"]
    quants = [] if [q.lower() for q in quants] == ["none"] else quants
    keep_float = not args.no_keep_float or args.report
    result = convert_checkpoint(args.source, args.out, quant=quants or None, outtype=args.outtype,
                                force=args.force, revision=args.revision, name=args.name,
                                keep_float=keep_float, progress=not args.quiet, nthread=args.threads)
    from .api import owns

    float_key = args.outtype.upper()
    for key, path in result.paths.items():
        state = "up to date" if key in result.skipped else "written"
        print(f"{key:8} {human_size(result.sizes[key]):>10}  {path}  ({state})")
    if args.verify:
        _verify_tokenizer(args, result)
    if args.report:
        float_path = result.float_path
        if float_path is None or not float_path.is_file():
            print(f"--report: no {float_key} GGUF to compare against; rerun with --force", file=sys.stderr)
        else:
            for key, path in result.paths.items():
                if key != float_key:
                    _print_report(float_path, path)
            if args.no_keep_float and owns(float_path, result.fingerprint):
                float_path.unlink()
    return 0


def _verify_tokenizer(args: argparse.Namespace, result) -> None:
    from . import source as source_mod
    from .verify import VERIFY_TEXTS, tokenization_mismatches

    src = source_mod.resolve(args.source, revision=args.revision)
    bad = []
    for key, path in result.paths.items():
        bad += [(key, m) for m in tokenization_mismatches(path, src.directory / "tokenizer.json", VERIFY_TEXTS)]
    if bad:
        key, m = bad[0]
        raise ConversionError(f"{key}: tokenization differs from tokenizer.json on {m.text!r}: "
                              f"expected {m.expected}, got {m.got}")
    print(f"tokenization: identical to tokenizer.json on {len(VERIFY_TEXTS)} texts")


def load_manifest(alias: str) -> dict:
    path = paths.manifest_dir() / f"{alias}.json"
    if not path.is_file():
        known = sorted(p.stem for p in paths.manifest_dir().glob("*.json"))
        raise ConversionError(f"unknown model alias {alias!r}; known aliases: {', '.join(known) or '(none)'}")
    return json.loads(path.read_text())


def run_pull(args: argparse.Namespace) -> int:
    _require_export_dependencies()
    from .api import convert_checkpoint

    from .api import owns

    manifest = load_manifest(args.alias)
    src = manifest.get("source", {})
    repo = src.get("hub_repo")
    if not repo:
        raise ConversionError(
            f"model {args.alias!r} is not converted from a Hugging Face checkpoint (its manifest has no "
            f"source.hub_repo; it ships as {src.get('install') or 'a ready GGUF'}), so there is nothing to pull"
        )
    quant = (args.quant or manifest.get("default_quant") or "Q4_K_M").upper()
    target = paths.converted_model_path(args.alias, quant)
    result = convert_checkpoint(repo, target.parent, quant=quant, outtype="f16", force=args.force,
                                revision=args.revision or src.get("revision"), name=args.alias,
                                keep_float=args.report, progress=not args.quiet, nthread=args.threads)
    assert result.paths[quant] == target
    state = "up to date" if quant in result.skipped else "written"
    print(f"{args.alias}: {quant} {human_size(result.sizes[quant])}  {target}  ({state})")
    if args.report and "F16" in result.paths:
        _print_report(result.paths["F16"], target)
        if owns(result.paths["F16"], result.fingerprint):
            result.paths["F16"].unlink()
    return 0
