"""`prodcat stack up|down|status|logs`: the whole local stack as one object."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from prodcat.errors import StackError
from prodcat.settings import Settings
from prodcat.stack.services import ElasticsearchService, KafkaService, RedisService, Service


@dataclass
class ServiceStatus:
    name: str
    address: str
    pid: int | None
    healthy: bool


class Stack:
    """Kafka, Elasticsearch and Redis as local processes; Milvus Lite is embedded (a file)."""

    def __init__(self, settings: Settings, only: list[str] | None = None) -> None:
        self.settings = settings
        services: list[Service] = [KafkaService(settings), ElasticsearchService(settings), RedisService(settings)]
        if only:
            unknown = set(only) - {s.name for s in services}
            if unknown:
                raise StackError(f"unknown service(s) {sorted(unknown)}; expected some of kafka, elasticsearch, redis")
            services = [s for s in services if s.name in only]
        self.services = services

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise StackError(f"no service named {name!r}; expected one of {[s.name for s in self.services]}")

    def up(self, on_event: Callable[[str], None] = lambda _msg: None) -> dict[str, float]:
        """Start what is not running, wait until every service is healthy; seconds per service.

        Idempotent: a healthy running service is left alone. Services start concurrently and
        are then awaited in order, so the slowest one bounds the total.
        """
        started: dict[str, float] = {}
        t0 = time.monotonic()
        for svc in self.services:
            if svc.process.pid() is not None and svc.healthy():
                on_event(f"{svc.name}: already running at {svc.address}")
                continue
            if svc.process.pid() is None:
                if svc.port_in_use():
                    raise StackError(f"{svc.name}: port {svc.port} is already in use by another process; "
                                     f"stop it or move {svc.name} with {svc.setting}")
                svc.prepare()
                svc.process.start()
                on_event(f"{svc.name}: starting (log: {svc.process.log_file})")
            started[svc.name] = 0.0
        deadline = t0 + self.settings.stack_timeout_s
        for name in started:
            svc = self.service(name)
            while not svc.healthy():
                if svc.process.pid() is None:
                    raise StackError(f"{name} exited during start-up; last log lines:\n{svc.process.tail()}")
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{name} not healthy after {self.settings.stack_timeout_s:.0f}s "
                        f"(raise PRODCAT_STACK_TIMEOUT_S if the machine is slow); last log lines:\n"
                        f"{svc.process.tail()}"
                    )
                time.sleep(0.25)
            started[name] = time.monotonic() - t0
            on_event(f"{name}: healthy at {svc.address} after {started[name]:.1f}s")
        return started

    def down(self, on_event: Callable[[str], None] = lambda _msg: None) -> None:
        """Stop every service by its pid (reverse start order)."""
        for svc in reversed(self.services):
            if svc.process.stop():
                on_event(f"{svc.name}: stopped")

    def status(self) -> list[ServiceStatus]:
        out = []
        for svc in self.services:
            pid = svc.process.pid()
            out.append(ServiceStatus(svc.name, svc.address, pid, pid is not None and svc.healthy()))
        return out
