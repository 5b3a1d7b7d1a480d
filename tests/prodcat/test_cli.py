"""User mistakes on the command line: one line naming the problem, a non-zero exit, no traceback."""

import subprocess
import sys

import pytest


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "prodcat", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["feed", "/no/such/catalogue.csv"], {}, "catalogue file /no/such/catalogue.csv does not exist"),
    (["topics"], {"PRODCAT_TOPIC_PARTITIONS": "many"}, "PRODCAT_TOPIC_PARTITIONS"),
    (["stack", "logs", "zookeeper"], {}, "no service named 'zookeeper'"),
    (["feed", "README.md", "--preset", "amazon"], {}, "amazon"),
    (["feed", "prodcat/data/sample_feed.jsonl"], {"PRODCAT_KAFKA_BROKERS": "127.0.0.1:1"},
     "Kafka at 127.0.0.1:1 is unreachable"),
])
def test_user_mistakes_are_one_line_errors(args, env, expected):
    proc = run(*args, **env)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], proc.stderr


def test_every_command_has_help():
    for args in (["--help"], ["stack", "--help"], ["feed", "--help"], ["worker", "--help"], ["rules", "generate", "--help"]):
        proc = run(*args)
        assert proc.returncode == 0 and "Usage" in proc.stdout, args
