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
import errno
import os
import sys
import traceback
from importlib import metadata
from typing import NoReturn

from .. import __version__, crash
from ..errors import OndeviceError
from . import call, chat, doctor, grammar, json_cmd, models, serve
from .options import example_path

ENTRY_POINT_GROUP = "ondevice.commands"
# Commands whose process runs llama.cpp: a native crash there is reported in one line (crash.py).
WATCHED_COMMANDS = frozenset({"call", "chat", "serve", "bench"})

EPILOG = """\
examples:
  ondevice call "What's the weather like in New York in fahrenheit?" --tools {examples}/simple/tools.json
  ondevice call "Play Taylor Swift for 20 minutes" --tools tools.json --model smollm2-135m-instruct --json
  ondevice chat --tools {examples}/multi_turn/tools.json
  ondevice json "Plan three days in Rome" --schema trip.schema.json
  ondevice models
  ondevice doctor
  ondevice serve --port 8000 --api-key secret
  ondevice grammar --tools {examples}/simple/tools.json --tool-choice required --out export/
  ondevice convert ./Llama-3.2-1B-Instruct-APIGen-FC-v0.1 --quant Q4_K_M --out ./gguf
  ondevice pull llama-3.2-1b-apigen-fc
  ondevice bench speed --limit 20

The card's examples (tools.json and case.json each) are in {examples}.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line, and a failed write of --help or --version output
    reported rather than silently dropped."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"ondevice: error: {self.prog}: {message} (see {self.prog} --help)\n")

    def _print_message(self, message: str, file=None) -> None:  # type: ignore[override]
        if message:
            (file or sys.stderr).write(message)


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
    parser = _Parser(
        prog="ondevice",
        description="Offline tool calling with guaranteed-valid calls, on llama.cpp.",
        epilog=EPILOG.format(examples=example_path()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ondevice {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="on errors, also print the engine's state (parser dumps, log tails, tracebacks)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (call, chat, json_cmd, models, serve, grammar, doctor):
        module.register(sub)
    seen = set(sub.choices)
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name not in seen:  # one registration per name, whatever the environment holds
            seen.add(ep.name)
            _register_extension(sub, ep)
    return parser


def one_line(text: str) -> str:
    """A message on one line: its lines joined with '; ' (messages may quote multi-line logs)."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Run the `ondevice` command; returns the exit status (0 ok, 2 bad input, 130 interrupted, 1 a bug)."""
    args = None
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, or a usage error argparse already printed
            sys.stdout.flush()
            return exc.code if isinstance(exc.code, int) else 2
        if not getattr(args, "func", None):
            parser.print_help()
            sys.stdout.flush()
            return 2
        if argv is None and args.command in WATCHED_COMMANDS:  # the real command line, not a caller's main([...])
            crash.install()
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a full disk shows here, not at exit
        return status
    except KeyboardInterrupt:
        _error("ondevice: interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (`ondevice call ... | head`): not an error of ours; exit as SIGPIPE would.
        _silence_stdout()
        return 141
    except OndeviceError as exc:
        verbose = bool(getattr(args, "verbose", False))
        if exc.is_bug:
            return _bug(exc, verbose)
        _error(f"ondevice: error: {one_line(str(exc))}", exc.details if verbose else None)
        return 2
    except OSError as exc:  # the environment, not the input: a full disk, a read-only folder, /dev/full
        message = _os_error_message(exc)
        if message is None:
            return _bug(exc, bool(getattr(args, "verbose", False)))
        _silence_stdout()
        _error(f"ondevice: error: {message}")
        return 2
    except ModuleNotFoundError as exc:
        ep = getattr(args, "_extension", None)
        if ep is None:
            return _bug(exc, bool(getattr(args, "verbose", False)))
        _error(f"ondevice: error: {_missing_message(ep, exc)}")
        return 2
    except Exception as exc:  # anything else is a bug in ondevice
        return _bug(exc, bool(getattr(args, "verbose", False)))


def _bug(exc: BaseException, verbose: bool) -> int:
    details = None
    if verbose:
        details = "".join(traceback.format_exception(exc)) + (getattr(exc, "details", None) or "")
    hint = "" if verbose else "; rerun with --verbose for the traceback"
    _error(f"ondevice: internal error: {type(exc).__name__}: {one_line(str(exc))[:500]} -- this is a bug, please "
           f"report it with the command you ran{hint}", details)
    return 1


def _error(line: str, details: str | None = None) -> None:
    try:
        print(line, file=sys.stderr)
        if details:
            print(details.rstrip("\n"), file=sys.stderr)
        sys.stderr.flush()
    except OSError:
        pass  # stderr itself is gone: the exit status still tells


def _os_error_message(exc: OSError) -> str | None:
    """One line for an OS error the user can fix (a named file, a full disk); None when it is ours."""
    if exc.filename is not None:
        return f"cannot access {exc.filename}: {exc.strerror or exc} (check the path and its permissions)"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS):
        return f"a write failed: {exc.strerror or exc} (free some space, or check where the output goes)"
    return None


def _silence_stdout() -> None:
    # Point stdout at /dev/null so the interpreter's final flush does not fail (and print) again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
