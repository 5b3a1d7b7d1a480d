"""A real Milvus standalone server (the PyPI ``milvus`` package) as a local process on free ports.

Used by the index tests and the similarity benchmark to run against server mode; the worker's
default stays Milvus Lite (a file).
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from prodcat.errors import StackError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MilvusStandalone:
    """The ``milvus`` package's standalone server (a bundled binary, embedded etcd, local
    storage) with every port chosen free, so it never collides with another stack or session.

    The package leaves the embedded etcd on the fixed ports 2379/2380, so its config template
    gets an ``etcd.config.path`` pointing at an etcd config with free ports.
    """

    def __init__(self, data_dir: Path, timeout_s: float = 180.0, grace_s: float = 10.0) -> None:
        self.data_dir = data_dir
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self.server = None

    def start(self) -> str:
        """Start the server and return its URI once /healthz answers."""
        from milvus import MilvusServer, MilvusServerConfig

        self.data_dir.mkdir(parents=True, exist_ok=True)
        etcd_client, etcd_peer = free_port(), free_port()
        etcd_yaml = self.data_dir / "embed-etcd.yaml"
        etcd_yaml.write_text(
            f"listen-client-urls: http://127.0.0.1:{etcd_client}\n"
            f"advertise-client-urls: http://127.0.0.1:{etcd_client}\n"
            f"listen-peer-urls: http://127.0.0.1:{etcd_peer}\n"
            f"initial-advertise-peer-urls: http://127.0.0.1:{etcd_peer}\n"
            f"initial-cluster: default=http://127.0.0.1:{etcd_peer}\n"
        )
        default = MilvusServerConfig()
        template = Path(default.template_file).read_text()
        template = template.replace("\netcd:\n", f"\netcd:\n  config:\n    path: {etcd_yaml}\n", 1)
        template_path = self.data_dir / "milvus.yaml.template"
        template_path.write_text(template)

        config = MilvusServerConfig(template=str(template_path), data_dir=str(self.data_dir / "server"))
        config.glog_conf_file = default.glog_conf_file  # the package sets it only for its own template
        ports = {key: free_port() for key in config.configurable_items if key.endswith("_port")}
        ports["etcd_port"] = etcd_client
        self.server = MilvusServer(config, wait_for_started=False, **ports)
        self.server.webservice_port = free_port()  # the package would otherwise take 9091 and up
        self.server.start()
        self._wait_healthy()
        return f"http://127.0.0.1:{self.server.listen_port}"

    def _wait_healthy(self) -> None:
        url = f"http://127.0.0.1:{self.server.webservice_port}/healthz"
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.server.server_proc.poll() is not None:
                raise StackError(f"Milvus standalone exited with {self.server.server_proc.returncode}; "
                                 f"see {self.data_dir / 'server' / 'logs'}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if b"OK" in resp.read():
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise StackError(f"Milvus standalone not healthy after {self.timeout_s}s; "
                         f"see {self.data_dir / 'server' / 'logs'}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``: 2.3.5 often hangs after stopping its
        coordinators (retrying them forever), and a test server's data is thrown away anyway."""
        if self.server is None or self.server.server_proc is None:
            return
        proc = self.server.server_proc
        proc.terminate()
        try:
            proc.wait(self.grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        self.server.stop()  # closes its log files
        self.server = None
