"""TensorFlow's start-up banners, hidden unless the user asks for them (``prodcat --verbose``).

Importing TensorFlow 2.21 prints 6-9 lines to stderr before anything prodcat says (oneDNN is on,
no CUDA driver, CPU instructions, a failed cuInit), so a one-line error drowned under them.
Two mechanisms, both needed, both set up here before TensorFlow is imported:

- ``TF_CPP_MIN_LOG_LEVEL=3`` silences TensorFlow's C++ logging once it is initialised (the
  cuInit error comes after the import). Real failures still reach the user: TensorFlow raises
  them as Python exceptions.
- The lines written *before* abseil logging is initialised ("WARNING: All log messages before
  absl::InitializeLog() ...") ignore every environment variable. While ``tensorflow`` is first
  imported, file descriptor 2 goes to a temporary file; afterwards the lines that are not
  TensorFlow's native log lines are written to the real stderr, so nothing else (another
  thread's log, a Python warning) is lost, only delayed until the import ends.

A variable the user set (``TF_CPP_MIN_LOG_LEVEL=0``) wins over the default here.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

__all__ = ["quiet_tensorflow"]

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # C++ INFO, WARNING and ERROR lines after logging is initialised
    "GRPC_VERBOSITY": "ERROR",  # gRPC (linked into TensorFlow) logs through the same pre-init path
}
# abseil's native log line: severity letter, date, time, thread id, file:line]
_NATIVE_LOG_LINE = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\]")
_BANNER_LINES = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
                 b"To enable the following instructions:")


def quiet_tensorflow() -> None:
    """Hide TensorFlow's start-up logs in this process and its children; idempotent."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("0", "1") or "tensorflow" in sys.modules:
        return  # the user wants TensorFlow's logs, or it is too late to hide its import
    if not any(isinstance(finder, _QuietImportFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImportFinder())


def _is_tensorflow_log(line: bytes) -> bool:
    return bool(_NATIVE_LOG_LINE.match(line)) or line.startswith(_BANNER_LINES)


@contextmanager
def _native_stderr_filtered() -> Iterator[None]:
    """fd 2 into a temporary file for the duration; then everything but TensorFlow's lines to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True) if not _is_tensorflow_log(line)]
            if kept:
                os.write(2, b"".join(kept))


class _QuietLoader(importlib.abc.Loader):
    """Executes the ``tensorflow`` package with its native start-up lines filtered out of stderr."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _native_stderr_filtered():
            self.loader.exec_module(module)


class _QuietImportFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` like the path finder does and wraps its loader; steps aside afterwards."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: submodules and later imports take the normal path
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec
