"""`ondevice doctor`: the CPU, the CPU backend llama.cpp loaded (a portable build's variant), llama.cpp's
build, where the weights go, GPU offload, the models and their checksums, the cache, and a tiny real call
in a child process. Run it when something is wrong or before
deploying to a machine."""

from __future__ import annotations

import argparse
import json

from ..doctor import diagnose

EXAMPLES = """\
examples:
  ondevice doctor
  ondevice doctor --model qwen2.5-coder-0.5b-instruct
  ondevice doctor --json

Exit status 0 when all is well; 1 with one `problem:` line per problem, each saying what to do.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check this machine and install, and say what to fix", description=__doc__,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", "-m", default=None, help="the model the tiny call loads (default: the default model)")
    p.add_argument("--no-call", dest="probe", action="store_false", help="skip the tiny call (no model load)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = diagnose(args.model, probe=args.probe)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        for name, text in report.facts:
            print(f"{name}: {text}")
        for problem in report.problems:
            print(f"problem: {problem}")
        if not report.problems:
            print("ok: no problem found")
    return 1 if report.problems else 0
