"""Run a single-node Elasticsearch 8 from Maven Central jars plus the small launcher in ``java/``.

The ES distribution is not on Maven Central, so ``java/`` holds a launcher (``prodcat.stack.EsMain``)
that builds a node from the server jar with Netty HTTP as a classpath plugin. Its logs go to
``<home>/logs/prodcat.log``; it stops cleanly on SIGTERM.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from prodcat.errors import StackError

JAVA_SRC = Path(__file__).parent / "java"
MAIN_CLASS = "prodcat.stack.EsMain"


def _stamp(sources: list[Path], jars: list[Path]) -> str:
    digest = hashlib.sha256()
    for src in sources:
        digest.update(str(src.relative_to(JAVA_SRC)).encode() + b"\0" + src.read_bytes())
    for jar in jars:
        digest.update(jar.name.encode() + b"\0")
    return digest.hexdigest()


def compile_launcher(jars: list[Path], out_dir: Path) -> Path:
    """Compile the launcher sources against ``jars`` into ``out_dir``; a no-op if already up to date."""
    sources = sorted(JAVA_SRC.rglob("*.java"))
    stamp = _stamp(sources, jars)
    stamp_file = out_dir / ".stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return out_dir
    javac = shutil.which("javac")
    if javac is None:
        raise StackError("`javac` is not on PATH; install a JDK 17+ (apt-get install openjdk-17-jdk-headless)")
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cmd = [javac, "--release", "17", "-encoding", "UTF-8", "-nowarn", "-d", str(out_dir),
           "-cp", os.pathsep.join(map(str, jars)), *map(str, sources)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-8:]
        raise StackError("could not compile the Elasticsearch launcher: " + " | ".join(tail))
    stamp_file.write_text(stamp)
    return out_dir


def elasticsearch_command(jars: list[Path], classes_dir: Path, home: Path, http_port: int,
                          transport_port: int, heap: str) -> list[str]:
    """The ``java`` argv that runs one node with config/, data/ and logs/ under ``home``."""
    java = shutil.which("java") or "java"
    return [
        java, f"-Xms{heap}", f"-Xmx{heap}",
        "-XX:+UseG1GC", "-XX:-OmitStackTraceInFastThrow", "-Dfile.encoding=UTF-8",
        # Netty settings ES itself ships in jvm.options.
        "-Dio.netty.noUnsafe=true", "-Dio.netty.noKeySetOptimization=true",
        "-Dio.netty.recycler.maxCapacityPerThread=0",
        # EsMain's shutdown hook closes the node first, then log4j; log4j's own hook would go too early.
        "-Dlog4j.shutdownHookEnabled=false", "-Dlog4j2.disable.jmx=true", "-Dlog4j2.formatMsgNoLookups=true",
        "-Djna.nosys=true",
        "-cp", os.pathsep.join([str(classes_dir), *map(str, jars)]),
        MAIN_CLASS, str(home), str(http_port), str(transport_port),
    ]
