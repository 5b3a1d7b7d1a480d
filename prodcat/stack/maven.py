"""Resolve a service's Java runtime (jars) from Maven Central once, then reuse the cache."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from prodcat.errors import StackError

POM_DIR = Path(__file__).parent / "maven"


def resolve_jars(pom_name: str, cache_dir: Path, properties: dict[str, str] | None = None) -> list[Path]:
    """Return the runtime jars of ``maven/<pom_name>.xml``, downloading them on first use.

    The cache key is the pom's content plus the properties, so a version change re-resolves
    while a second ``stack up`` costs nothing.
    """
    pom = POM_DIR / f"{pom_name}.xml"
    props = properties or {}
    key = hashlib.sha256(pom.read_bytes() + repr(sorted(props.items())).encode()).hexdigest()[:16]
    lib = cache_dir / f"{pom_name}-{key}"
    done = lib / ".resolved"
    if not done.exists():
        if shutil.which("mvn") is None:
            raise StackError("Maven (`mvn`) is not on PATH; install it (apt-get install maven) to resolve service jars")
        tmp = lib.with_suffix(".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
        cmd += [f"-D{k}={v}" for k, v in props.items()]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            raise StackError(f"Maven could not resolve {pom_name} jars: " + " | ".join(tail))
        shutil.rmtree(lib, ignore_errors=True)
        tmp.rename(lib)
        done.touch()
    return sorted(lib.glob("*.jar"))
