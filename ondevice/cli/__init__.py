"""The `ondevice` command: one small module per subcommand, each exposing `register(subparsers)`.

Subcommands of the export step (`convert`, `pull`) and of the benchmarks (`bench`) live in the
`convert` and `bench` packages; an edge install without them still gets `call`, `chat` and `models`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import OndeviceError

# (module, what to install when it is missing)
_SUBCOMMAND_MODULES = [
    ("ondevice.cli.call", None),
    ("ondevice.cli.chat", None),
    ("ondevice.cli.models", None),
    ("ondevice.cli.serve", None),
    ("ondevice.cli.grammar", None),
    ("convert.cli", "the export step: pip install 'ondevice[convert]' from a source checkout"),
    ("bench.cli", "the benchmarks: pip install 'ondevice[bench]' from a source checkout"),
]

EPILOG = """\
examples:
  ondevice call "What's the weather like in New York in fahrenheit?" --tools examples/simple/tools.json
  ondevice call "Play Taylor Swift for 20 minutes" --tools tools.json --model smollm2-135m-instruct --json
  ondevice chat --tools examples/multi_turn/tools.json
  ondevice models
  ondevice serve --port 8000 --api-key secret
  ondevice grammar --tools examples/simple/tools.json --tool-choice required --out export/
  ondevice convert ./Llama-3.2-1B-Instruct-APIGen-FC-v0.1 --quant Q4_K_M --out ./gguf
  ondevice pull llama-3.2-1b-apigen-fc
  ondevice bench speed --limit 20
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ondevice",
        description="Offline tool calling with guaranteed-valid <tool_call> output, on llama.cpp.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name, _missing_hint in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only a missing optional package is tolerated; a broken import inside one is a bug.
            if exc.name and module_name.startswith(exc.name.split(".")[0]):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except OndeviceError as exc:
        print(f"ondevice: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ondevice: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
