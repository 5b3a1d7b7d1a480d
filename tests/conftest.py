"""Shared fixtures: the shared datasets folder and the real local stack (started once per session)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from prodcat.settings import Settings
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
# the test stack lives beside any developer stack: own state folder, own ports (a second test
# session on the same machine can move with PRODCAT_TEST_PORT_PREFIX=2: ports 29092, 29200, 26379)
PORT_PREFIX = os.environ.get("PRODCAT_TEST_PORT_PREFIX", "1")
TEST_STATE = ROOT / ".prodcat" / f"test-stack-{PORT_PREFIX}"


@pytest.fixture(scope="session")
def datasets() -> Path:
    """../shared/datasets beside the repository; tests that need it skip when it is absent."""
    if not DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {DATASETS}")
    return DATASETS


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Settings:
    """Kafka, Elasticsearch and Redis as real local processes, fresh data, stopped at the end."""
    from prodcat.stack import Stack

    settings = Settings(
        state_dir=TEST_STATE,
        kafka_brokers=f"127.0.0.1:{PORT_PREFIX}9092",
        es_url=f"http://127.0.0.1:{PORT_PREFIX}9200",
        redis_url=f"redis://127.0.0.1:{PORT_PREFIX}6379/0",
        milvus_uri=str(tmp_path_factory.mktemp("milvus") / "prodcat.db"),
        stack_timeout_s=float(os.environ.get("PRODCAT_TEST_STACK_TIMEOUT_S", "240")),
    )
    services = Stack(settings)
    # a test stack left running (another session on this machine) is reused and left alone;
    # otherwise start from empty data and stop everything at the end
    owned = [s.name for s in services.status() if s.pid is None]
    for name in owned:
        shutil.rmtree(TEST_STATE / name, ignore_errors=True)
    try:
        services.up()
        yield settings
    finally:
        if owned:
            Stack(settings, only=owned).down()


@pytest.fixture
def isolated(stack: Settings, tmp_path) -> Settings:
    """Settings with topics, group, index and Milvus file of this test only, on the shared stack.

    Images are off (the text-only tests do not need TensorFlow in every worker); tests of the
    image path turn them on.
    """
    tag = uuid.uuid4().hex[:8]
    return stack.model_copy(update={
        "milvus_uri": str(tmp_path / "milvus" / "prodcat.db"), "embed_images": False, "web_port": free_port(),
        "topic_raw": f"{tag}.products.raw", "topic_categorised": f"{tag}.products.categorised",
        "topic_label_requests": f"{tag}.labelling.requests", "topic_labels": f"{tag}.labelling.labels",
        "topic_deadletter": f"{tag}.products.deadletter", "topic_model_updates": f"{tag}.models.updates",
        "consumer_group": f"prodcat-test-{tag}", "es_index_products": f"products-{tag}",
    })


class WorkerProcess:
    """A real `prodcat worker` subprocess with the given settings (so tests can SIGKILL it)."""

    def __init__(self, settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None) -> None:
        import subprocess
        import sys

        self.log_path = log_path
        env = {**os.environ, **settings.to_env(), **(extra_env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "prodcat", "worker", "--loglevel", "warning"],
                                     env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)

    def kill(self, sig: int = 9) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(60)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def workers(tmp_path):
    """Start workers with ``workers(settings)``; every one is stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, **extra_env: str) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log", extra_env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill(15)
