"""The crash watcher: a tiny process (standard library only, run as a script) that holds the read end of
the pipe the `ondevice` process's faulthandler writes to. When that process ends, the pipe closes; if
faulthandler wrote a fatal-error report into it (a segfault, an illegal instruction, an abort in
llama.cpp), the watcher prints one line on the shared stderr naming the likely cause and
`ondevice doctor`, and keeps the report in a file for `--verbose` readers. See ondevice/crash.py.

argv: FD REPORT_PATH HINT_SEGV HINT_ILL HINT_OTHER
"""

from __future__ import annotations

import os
import re
import signal
import sys


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the user's Ctrl-C is for the ondevice process, not us
    fd, report_path, hint_segv, hint_ill, hint_other = int(argv[0]), argv[1], argv[2], argv[3], argv[4]
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except InterruptedError:
            continue
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
        if sum(map(len, chunks)) > 1 << 20:
            chunks = chunks[-4:]
    text = b"".join(chunks).decode("utf-8", errors="replace")
    match = re.search(r"Fatal Python error: ([^\n]+)", text)
    if not match:
        return 0
    what = match.group(1).strip()
    where = ""
    frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', text)
    if frames:  # faulthandler lists the most recent call first
        path, line, func = frames[0]
        where = f", in {os.path.basename(path)}:{line} {func}()"
    hint = hint_ill if "Illegal instruction" in what else hint_segv if "Segmentation" in what or "Bus error" in what else hint_other
    saved = ""
    try:
        os.makedirs(os.path.dirname(report_path) or ".", exist_ok=True)
        tmp = report_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, report_path)
        saved = f" (report: {report_path})"
    except OSError:
        pass
    try:
        sys.stderr.write(f"ondevice: crashed in native code ({what}{where}): {hint}; run `ondevice doctor`{saved}\n")
        sys.stderr.flush()
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
