"""The local stack: idempotent up, a clear message naming a failing service, down leaves nothing."""

from __future__ import annotations

import socket

import pytest

from prodcat.errors import StackError
from prodcat.stack import Stack

pytestmark = pytest.mark.integration


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_is_idempotent_and_status_is_healthy(stack):
    services = Stack(stack)
    pids = {s.name: s.pid for s in services.status()}
    assert all(s.healthy for s in services.status())
    assert services.up() == {}, "a second `up` starts nothing"
    assert {s.name: s.pid for s in services.status()} == pids


def test_down_stops_the_process_and_frees_the_port(stack, tmp_path):
    free = 16390
    settings = stack.model_copy(update={"state_dir": tmp_path, "redis_url": f"redis://127.0.0.1:{free}/0"})
    redis_only = Stack(settings, only=["redis"])
    redis_only.up()
    pid = redis_only.status()[0].pid
    assert pid and port_open(free)
    redis_only.down()
    assert redis_only.status()[0].pid is None
    assert not port_open(free)
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)


def test_a_taken_port_is_reported_with_the_setting_to_change(stack, tmp_path):
    taken = int(stack.redis_url.rsplit(":", 1)[1].split("/")[0])  # the session's Redis holds this port
    settings = stack.model_copy(update={"state_dir": tmp_path, "stack_timeout_s": 20.0})
    clash = Stack(settings, only=["redis"])
    clash.services[0].process.pid_file.parent.mkdir(parents=True, exist_ok=True)
    # another program on the port must not pass for our service: up says which and what to change
    with pytest.raises(StackError, match=r"redis: port \d+ is already in use.*PRODCAT_REDIS_URL"):
        clash.up()
    assert clash.status()[0].pid is None, "nothing was started"
    assert port_open(taken), "the session's Redis is untouched"


def test_unknown_service_is_a_clear_error(stack):
    with pytest.raises(StackError, match="unknown service"):
        Stack(stack, only=["zookeeper"])
