"""What every benchmark shares: the machine description, the command line, atomic JSON, progress."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

from ondevice.paths import REPO_ROOT, atomic_path


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> Optional[float]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def version_of(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """A short, stable description of where a number was measured."""
    return {
        "cpu": _cpu_model(),
        "cores": _usable_cores(),
        "ram_gib": _ram_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "llama_cpp_python": version_of("llama-cpp-python") or version_of("llama_cpp_python"),
        "ondevice": version_of("ondevice"),
    }


def machine_line(machine: dict[str, Any]) -> str:
    ram = f", {machine['ram_gib']:g} GiB RAM" if machine.get("ram_gib") else ""
    return f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores{ram}, {machine.get('os', '')}".strip(", ")


# Options that change how a run is carried out but not its numbers: left out of the printed command.
_NOT_REPRODUCING = {"resume", "progress_every", "time_budget_min", "worker", "func", "command", "bench_command"}


def command_line(args: Any = None) -> str:
    """The command that reproduces a result, as a user would type it: `ondevice bench <name>` and
    every option whose value differs from its default (from the parsed `args` when given)."""
    parser = getattr(args, "_bench_parser", None)
    name = getattr(args, "_bench_name", None)
    if parser is None or name is None:
        return "ondevice " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    parts = ["ondevice", "bench", name]
    for action in parser._actions:  # argparse keeps no public list of options
        dest = action.dest
        if dest in _NOT_REPRODUCING or dest.startswith("_") or not action.option_strings or dest == "help":
            continue
        value = getattr(args, dest, None)
        if value == action.default:
            continue
        flag = max(action.option_strings, key=len)
        if value is True and action.nargs == 0:
            parts.append(flag)
        elif value is not None:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def git_commit() -> Optional[str]:
    head = REPO_ROOT / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref_path = REPO_ROOT / ".git" / ref[5:]
            if ref_path.exists():
                return ref_path.read_text().strip()[:12]
            packed = REPO_ROOT / ".git" / "packed-refs"
            for line in packed.read_text().splitlines():
                if line.endswith(ref[5:]):
                    return line.split()[0][:12]
            return None
        return ref[:12]
    except OSError:
        return None


def write_json(path: Path, data: Any) -> Path:
    """Write `data` as indented JSON, atomically (nothing half-written is ever left at `path`)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
        tmp.chmod(0o644)  # mkstemp makes 0600; results are meant to be shared and committed
    return path


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def log(message: str) -> None:
    """Progress goes to stderr, one line at a time, flushed."""
    print(message, file=sys.stderr, flush=True)


class Progress:
    """`[label] i/n  elapsed  eta` lines on stderr, at most one every `every_s` seconds (and the last)."""

    def __init__(self, label: str, total: int, every_s: float = 5.0):
        self.label, self.total, self.every_s = label, total, every_s
        self.start = time.perf_counter()
        self.last = 0.0
        self.done = 0

    def step(self, extra: str = "") -> None:
        self.done += 1
        now = time.perf_counter()
        if now - self.last < self.every_s and self.done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        log(f"[{self.label}] {self.done}/{self.total}  {elapsed:6.0f}s elapsed  eta {eta:5.0f}s  {extra}".rstrip())


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024


def file_mib(path: Path) -> float:
    return round(Path(path).stat().st_size / 1024 / 1024, 1)
