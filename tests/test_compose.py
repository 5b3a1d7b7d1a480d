"""docker-compose.yml cannot run here (no Docker engine): keep it honest against the settings."""

from pathlib import Path
from urllib.parse import urlparse

import yaml

from prodcat.settings import Settings

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[1] / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def published_ports(service: str) -> set[int]:
    return {int(str(p).split(":")[0]) for p in SERVICES[service].get("ports", [])}


def test_compose_has_every_service_of_the_architecture():
    assert {"kafka", "elasticsearch", "redis", "milvus", "etcd", "minio", "worker"} <= set(SERVICES)


def test_worker_variables_are_settings_fields():
    env = SERVICES["worker"]["environment"]
    fields = {f"PRODCAT_{name.upper()}" for name in Settings.model_fields}
    assert env, "the worker gets its configuration from PRODCAT_* variables"
    assert set(env) <= fields, f"unknown variables: {set(env) - fields}"
    Settings.model_validate({k.removeprefix("PRODCAT_").lower(): v for k, v in env.items()})


def test_worker_points_at_compose_services_on_their_ports():
    env = SERVICES["worker"]["environment"]
    for var, service in [("PRODCAT_KAFKA_BROKERS", "kafka"), ("PRODCAT_ES_URL", "elasticsearch"),
                         ("PRODCAT_REDIS_URL", "redis"), ("PRODCAT_MILVUS_URI", "milvus")]:
        value = env[var]
        parsed = urlparse(value if "://" in value else f"tcp://{value}")
        assert parsed.hostname == service, var
        assert parsed.port in published_ports(service), f"{var} port {parsed.port} is not published by {service}"


def test_published_ports_match_local_defaults():
    defaults = Settings()
    for service, url in [("kafka", f"tcp://{defaults.kafka_brokers}"), ("elasticsearch", defaults.es_url),
                         ("redis", defaults.redis_url)]:
        assert urlparse(url).port in published_ports(service), service
    assert int(SERVICES["worker"]["environment"]["PRODCAT_WEB_PORT"]) in published_ports("worker")


def test_elasticsearch_major_matches_client():
    import elasticsearch

    image_version = SERVICES["elasticsearch"]["image"].rsplit(":", 1)[1]
    assert int(image_version.split(".")[0]) == elasticsearch.__version__[0]
    assert image_version.split(".")[0] == Settings().es_version.split(".")[0]
