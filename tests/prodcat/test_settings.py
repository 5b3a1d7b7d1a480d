"""Settings: environment variables in, secrets never out."""

import pytest
from pydantic import ValidationError

from prodcat.settings import Settings


def test_environment_variables_override_defaults(monkeypatch):
    monkeypatch.setenv("PRODCAT_KAFKA_BROKERS", "broker-a:9093,broker-b:9093")
    monkeypatch.setenv("PRODCAT_TOPIC_PARTITIONS", "12")
    s = Settings()
    assert s.kafka_brokers == "broker-a:9093,broker-b:9093" and s.topic_partitions == 12


def test_secrets_stay_out_of_reprs_and_logs_but_reach_clients(monkeypatch):
    monkeypatch.setenv("PRODCAT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("PRODCAT_KAFKA_SASL_USERNAME", "feed")
    monkeypatch.setenv("PRODCAT_KAFKA_SASL_PASSWORD", "kafka-s3cret")
    monkeypatch.setenv("PRODCAT_ES_API_KEY", "es-s3cret")
    monkeypatch.setenv("PRODCAT_REDIS_PASSWORD", "redis-s3cret")
    s = Settings()
    text = repr(s) + str(s) + str(s.model_dump())
    assert "s3cret" not in text
    assert s.kafka_client_config()["sasl.password"] == "kafka-s3cret"
    assert s.es_client_kwargs()["api_key"] == "es-s3cret"
    assert s.redis_kwargs() == {"password": "redis-s3cret"}


def test_to_env_reproduces_the_settings(monkeypatch):
    original = Settings(es_url="http://es.internal:9200", batch_size=64, redis_password="pw")
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    assert Settings() == original


def test_bad_values_are_rejected_with_the_field_named(monkeypatch):
    monkeypatch.setenv("PRODCAT_TOPIC_PARTITIONS", "zero")
    with pytest.raises(ValidationError, match="topic_partitions"):
        Settings()
