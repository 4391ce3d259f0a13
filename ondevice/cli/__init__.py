"""The `ondevice` command: one small module per subcommand, each exposing `register(subparsers)`.

The runtime's subcommands (`call`, `chat`, `models`) are built in. Any other subcommand comes from the
`ondevice.commands` entry-point group: each entry point is named after its subcommand, points at a
`register(subparsers)` function, and names in brackets the extra that installs what it needs
(pyproject.toml registers `convert` and `pull` from ondevice_convert, `bench` from ondevice_bench).
When a registered command cannot load (its extra is not installed), it is still listed, and running it
prints one line naming the pip command that installs it (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from .. import __version__
from ..errors import OndeviceError
from . import call, chat, models
from .options import example_path

ENTRY_POINT_GROUP = "ondevice.commands"

EPILOG = """\
examples:
  ondevice call "What's the weather like in New York in fahrenheit?" --tools {examples}/simple/tools.json
  ondevice call "Play Taylor Swift for 20 minutes" --tools tools.json --model smollm2-135m-instruct --json
  ondevice chat --tools {examples}/multi_turn/tools.json
  ondevice models
  ondevice convert ./Llama-3.2-1B-Instruct-APIGen-FC-v0.1 --quant Q4_K_M --out ./gguf
  ondevice pull llama-3.2-1b-apigen-fc
  ondevice bench speed --limit 20

The card's examples (tools.json and case.json each) are in {examples}.
"""


class MissingExtraError(OndeviceError, ModuleNotFoundError):
    """A subcommand's optional package or one of its dependencies is not installed."""


def _install_hint(ep: metadata.EntryPoint) -> str:
    dist = ep.dist.name if ep.dist is not None else "ondevice"
    extras = ",".join(ep.extras)
    return f"pip install '{dist}[{extras}]'" if extras else f"pip install {dist}"


def _missing_message(ep: metadata.EntryPoint, exc: ModuleNotFoundError) -> str:
    return f"`ondevice {ep.name}` needs {exc.name!r}, which is not installed: {_install_hint(ep)}"


def _missing(ep: metadata.EntryPoint, exc: ModuleNotFoundError):
    def run(args: argparse.Namespace) -> int:
        raise MissingExtraError(_missing_message(ep, exc))
    return run


def _register_extension(sub: argparse._SubParsersAction, ep: metadata.EntryPoint) -> None:
    try:
        register = ep.load()
    except ModuleNotFoundError as exc:
        # Listed, but running it (with any arguments, --help included) says what to install.
        p = sub.add_parser(ep.name, help=f"(not installed: {_install_hint(ep)})", add_help=False,
                           prefix_chars="\0")  # every argument, --help included, is left to REMAINDER
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=_missing(ep, exc))
        return
    before = set(sub.choices)
    register(sub)
    for name in set(sub.choices) - before:  # a dependency imported only when the command runs
        sub.choices[name].set_defaults(_extension=ep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ondevice",
        description="Offline tool calling with guaranteed-valid <tool_call> output, on llama.cpp.",
        epilog=EPILOG.format(examples=example_path()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ondevice {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (call, chat, models):
        module.register(sub)
    seen = set(sub.choices)
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name not in seen:  # one registration per name, whatever the environment holds
            seen.add(ep.name)
            _register_extension(sub, ep)
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
    except ModuleNotFoundError as exc:
        ep = getattr(args, "_extension", None)
        if ep is None:
            raise
        print(f"ondevice: error: {_missing_message(ep, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ondevice: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
