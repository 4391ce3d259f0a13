"""The child process that runs llama.cpp's quantizer (see quantizer.quantize): its log goes to stdout.

    python quantize_worker.py SRC DST FTYPE NTHREAD MAX_BUF_BYTES

Exit status 0 when llama.cpp succeeded, else its return code (or 1). Run as a script, not imported by
the package; it imports only llama_cpp.
"""

from __future__ import annotations

import ctypes
import os
import sys

if __name__ == "__main__" and sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    del sys.path[0]  # this folder's modules (errors.py, api.py, ...) must not shadow anything


def main(argv: list[str]) -> int:
    src, dst, ftype, nthread, max_buf = argv
    import llama_cpp

    @llama_cpp.llama_log_callback
    def _to_stdout(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        try:
            os.write(1, text)
        except OSError:
            pass

    llama_cpp.llama_log_set(_to_stdout, ctypes.c_void_p(0))
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(ftype)
    params.nthread = int(nthread)
    params.max_buf_size = int(max_buf)
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    return 0 if rc == 0 else (rc if 0 < rc < 256 else 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
