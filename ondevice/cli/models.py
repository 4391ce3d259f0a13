"""`ondevice models`: the models we support, which are available here, the default, and the tool format
each is prompted in and why (its manifest, or what its chat template shows). `ondevice models FILE.gguf`
says the same for any GGUF."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..models.assets import STANDIN_ALIAS, standin_gguf_path
from ..errors import OndeviceError
from ..formats.detect import format_for_path, read_chat_template
from ..formats.reasoning import describe, thinking_block
from ..models.catalog import MODEL_ENV, default_alias, manifests
from ..paths import models_dir

EXAMPLES = """\
examples:
  ondevice models
  ondevice models --json
  ondevice models ~/models/my-model.Q4_K_M.gguf     # which tool format a file gets, and why
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list supported models and what is available locally",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", default=None, help="a .gguf file: say which tool format it gets and why")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=run)


def available(alias: str) -> list[str]:
    """Local GGUF files for an alias (the stand-in's installed file, or pulled conversions)."""
    if alias == STANDIN_ALIAS:
        try:
            return [str(standin_gguf_path(verify=False))]
        except OndeviceError:
            return []
    return sorted(str(p) for p in (models_dir() / alias).glob(f"{alias}.*.gguf"))


def _format(path: str, manifest: dict) -> dict[str, str]:
    try:
        fmt, reason = format_for_path(path, manifest)
        template = read_chat_template(path)
    except OndeviceError as exc:
        return {"tool_format": "?", "reason": str(exc)}
    found = {"tool_format": fmt, "reason": reason}
    thinking = describe(thinking_block(template)) if template else None
    return found | ({"reasoning": thinking} if thinking else {})


def run(args: argparse.Namespace) -> int:
    if args.file is not None:
        found = _format(args.file, {})
        if found["tool_format"] == "?":
            print(f"ondevice models: {found['reason']}", file=sys.stderr)
            return 2
        thought = f"\n  reasoning: {found['reasoning']}" if "reasoning" in found else ""
        print(json.dumps({"file": args.file} | found, indent=2) if args.json
              else f"{args.file}\n  tool format: {found['tool_format']} ({found['reason']}){thought}")
        return 0
    known = manifests()
    default = os.environ.get(MODEL_ENV) or default_alias(known) or STANDIN_ALIAS
    rows = []
    for alias, manifest in known.items():
        files = available(alias)
        row = {"alias": alias, "role": manifest.get("role", ""), "description": manifest.get("description", ""),
               "source": manifest.get("source", {}), "local_files": files, "default": alias == default}
        if files:
            row |= _format(files[0], manifest)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        how = row["source"].get("install") or f"ondevice pull {row['alias']}"
        status = "\n    ".join(row["local_files"]) if row["local_files"] else f"not available locally: {how}"
        mark = "  (the default without --model)" if row["default"] else ""
        fmt = f"\n    tool format: {row['tool_format']} ({row['reason']})" if "tool_format" in row else ""
        print(f"{row['alias']}  [{row['role']}]{mark}\n  {row['description']}\n    {status}{fmt}")
    return 0
