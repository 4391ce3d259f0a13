"""`ondevice models`: the models we support and which are available here."""

from __future__ import annotations

import argparse
import json

from ..models.assets import STANDIN_ALIAS, standin_gguf_path
from ..errors import OndeviceError
from ..models.catalog import manifests
from ..paths import models_dir

EXAMPLES = """\
examples:
  ondevice models
  ondevice models --json
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list supported models and what is available locally",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
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


def run(args: argparse.Namespace) -> int:
    rows = []
    for alias, manifest in manifests().items():
        rows.append({"alias": alias, "role": manifest.get("role", ""), "description": manifest.get("description", ""),
                     "source": manifest.get("source", {}), "local_files": available(alias)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        how = row["source"].get("install") or f"ondevice pull {row['alias']}"
        status = "\n    ".join(row["local_files"]) if row["local_files"] else f"not available locally: {how}"
        print(f"{row['alias']}  [{row['role']}]\n  {row['description']}\n    {status}")
    return 0
