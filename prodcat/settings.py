"""One settings object for every component, read from PRODCAT_* variables or a .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from prodcat.errors import ConfigError
from prodcat.limits import ES_MAX_ID_BYTES, InputLimits


class Settings(BaseSettings):
    """Everything an operator can set. Built once at the edge (CLI, worker) and passed down.

    Every field is read from the environment variable ``PRODCAT_<FIELD NAME>``; secrets are
    ``SecretStr`` so they never appear in logs or reprs.
    """

    model_config = SettingsConfigDict(
        env_prefix="PRODCAT_", env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # --- Kafka -------------------------------------------------------------------------------
    kafka_brokers: str = "localhost:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    topic_partitions: int = Field(4, ge=1)
    topic_replication: int = Field(1, ge=1)
    topic_raw: str = "products.raw"
    topic_categorised: str = "products.categorised"
    topic_label_requests: str = "labelling.requests"
    topic_labels: str = "labelling.labels"
    topic_deadletter: str = "products.deadletter"
    topic_model_updates: str = "models.updates"
    consumer_group: str = "prodcat-worker"

    # --- Elasticsearch -----------------------------------------------------------------------
    es_url: str = "http://localhost:9200"
    es_api_key: SecretStr | None = None
    es_username: str | None = None
    es_password: SecretStr | None = None
    es_ca_certs: Path | None = None
    es_index_products: str = "products"
    es_index_evaluations: str = "evaluations"
    es_index_labels: str = "labels"

    # --- Redis / Milvus ----------------------------------------------------------------------
    redis_url: str = "redis://localhost:6379/0"
    redis_password: SecretStr | None = None
    milvus_uri: str = ".prodcat/milvus/prodcat.db"
    milvus_token: SecretStr | None = None

    # --- worker ------------------------------------------------------------------------------
    web_port: int = Field(6066, ge=1, le=65535)
    web_host: str = "127.0.0.1"
    web_token: SecretStr | None = Field(None, description="required for /metrics and /health off loopback")
    batch_size: int = Field(256, ge=1)
    batch_within_s: float = Field(0.5, gt=0)
    # batches handled at once: with 2, batch N+1 is taken and categorised while batch N is written
    batches_in_flight: int = Field(2, ge=1, le=8)
    # --- limits at the edge: a breach dead-letters the event with a reason naming the setting ---
    max_message_bytes: int = Field(1 << 20, ge=1024)
    max_json_depth: int = Field(32, ge=2, le=1000)  # orjson stops at 1,024 anyway
    max_fields: int = Field(1_000, ge=10)  # keys in one message, nested ones included
    max_field_name_chars: int = Field(256, ge=8)
    max_field_chars: int = Field(20_000, ge=100)
    max_id_bytes: int = Field(ES_MAX_ID_BYTES, ge=1, le=ES_MAX_ID_BYTES)
    max_document_bytes: int = Field(256 << 10, ge=4096)
    max_future_skew_s: float = Field(24 * 3600.0, ge=0)
    rules_path: Path | None = None
    taxonomy_path: Path | None = None
    skip_unchanged: bool = True
    unchanged_ttl_s: int = Field(30 * 24 * 3600, ge=60)
    model_check_interval_s: float = Field(2.0, gt=0)
    model_registry: Path = Path(".prodcat/models")
    retrain_min_new_labels: int = Field(200, ge=1)
    retrain_interval_s: float = Field(24 * 3600, gt=0)
    # PU correction for rule labels: weight of the zeros of a product no rule fired on and nobody
    # labelled (0 = not evidence at all; 1 = every such product is a negative everywhere)
    retrain_unlabelled_weight: float = Field(0.0, ge=0, le=1)
    # 0: every round trains from scratch; N: a round fine-tunes the promoted model N epochs per member
    # (benchmarks/results/fine_tune.md: about a third of the time, 0.2-0.8 F1 points lower)
    retrain_fine_tune_epochs: int = Field(0, ge=0)

    # --- images (fetched from untrusted feeds: private addresses and local files are refused) ---
    embed_images: bool = True
    embedder_handle: str | None = Field(None, description="a TF-Hub handle/URL/SavedModel dir; default EfficientNet-Lite0")
    image_size: int = Field(224, ge=32, le=1024)
    image_fetch_concurrency: int = Field(8, ge=1)
    image_allow_private: bool = False
    image_allow_local_files: bool = False

    # --- labelling requests (keep the queue to what people can label per day) ------------------
    # Importance sampling (prodcat/sampling.py): each categorised product is asked for with
    # p = min(1, scale * max(p_min, max(uncertainty, disagreement) ** sharpness)), the scale set by a
    # rate controller so requests meet the budget. The old fixed gate (PRODCAT_LABELLING_UNCERTAINTY_MIN,
    # _DISAGREEMENT_MIN) is gone: a threshold gives most products p = 0, which no weight can correct.
    labelling_budget_per_day: float = Field(1000, ge=0, description="requests per day for the whole fleet; 0 = off")
    labelling_workers: int = Field(1, ge=1, description="workers sharing the budget: each aims at budget / workers")
    labelling_p_min: float = Field(0.05, gt=0, le=1, description="floor of the raw probability (bounds 1/p spread)")
    labelling_sharpness: float = Field(2.0, gt=0, description="exponent on the doubt signal")
    labelling_horizon_s: float = Field(3600.0, gt=0, description="time constant of the arrival-rate estimate")
    labelling_burst_s: float = Field(3600.0, gt=0, description="token bucket depth, in seconds of budget")
    labelling_seed: int = Field(0, description="seed of the workers' draws (each worker mixes in its identity)")
    labelling_window_s: int = Field(7 * 24 * 3600, ge=0)
    # a hard stop per worker, not the target (it used to be both); default 1.5 x the worker's budget
    labelling_max_per_day: int | None = Field(None, ge=0)
    # how human labels count in retraining (retrain/weights.py): each weighs human_weight x its
    # self-normalised 1/p; correct_rules weights the rule labels by the trust the human labels show
    labelling_human_weight: float = Field(1.0, gt=0)
    labelling_correct_rules: bool = True
    labelling_token: SecretStr | None = Field(None, description="required when the labelling page is not on loopback")

    # --- local stack (`prodcat stack`) ------------------------------------------------------
    state_dir: Path = Path(".prodcat")
    stack_timeout_s: float = Field(120.0, gt=0)
    kafka_version: str = "3.9.1"
    es_version: str = "8.14.3"
    es_heap: str = "1g"
    kafka_heap: str = "512m"

    # --- consumer group: how soon a restarted worker consumes (benchmarks/results/recovery.md) ---
    # A killed worker's partitions stay with it until its session expires: 8 s, not Faust's 60 s, so
    # a restart consumes at most ~8 s after the kill (the broker's group.min.session.timeout.ms, 6 s
    # by default, is the floor). Faust's consumer sends heartbeats from its own thread: a long batch
    # on the main loop does not hold them up.
    kafka_session_timeout_s: float = Field(8.0, ge=6, le=90)
    kafka_heartbeat_interval_s: float = Field(1.0, gt=0, le=10, description="well under the session timeout (1/3 at most)")
    # Static group membership (Kafka's group.instance.id): a name for this worker, the same across
    # its restarts; a restart under the same id gets its partitions back without a rebalance. The
    # web address is appended (`id@host:port`): Faust's assignor refuses an assignment made for
    # another address, and two workers on one machine (different ports) never share an id.
    worker_instance_id: str | None = Field(None, description="static membership; unset or empty = dynamic")

    @classmethod
    def load(cls) -> Settings:
        """Settings from the environment; a bad value is one ConfigError naming every variable at fault."""
        try:
            return cls()
        except ValidationError as exc:
            problems = "; ".join(f"PRODCAT_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid settings: {problems}") from None

    def to_env(self) -> dict[str, str]:
        """PRODCAT_* variables that reproduce these settings in a child process (a worker)."""
        env = {}
        for name, value in self.model_dump(exclude_none=True).items():
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"PRODCAT_{name.upper()}"] = str(value)
        return env

    def input_limits(self) -> InputLimits:
        """The edge's limits on one raw event (the ``max_*`` settings)."""
        return InputLimits(message_bytes=self.max_message_bytes, json_depth=self.max_json_depth,
                           fields=self.max_fields, field_name_chars=self.max_field_name_chars,
                           field_chars=self.max_field_chars, id_bytes=self.max_id_bytes,
                           document_bytes=self.max_document_bytes, future_skew_s=self.max_future_skew_s)

    def kafka_client_config(self) -> dict[str, str]:
        """librdkafka-style (confluent-kafka) connection settings, credentials included."""
        conf = {"bootstrap.servers": self.kafka_brokers, "security.protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL"):
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username or ""
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
        if self.kafka_ssl_cafile:
            conf["ssl.ca.location"] = str(self.kafka_ssl_cafile)
        return conf

    def es_client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``elasticsearch.Elasticsearch``, credentials included."""
        kwargs: dict[str, object] = {"hosts": [self.es_url], "request_timeout": 30}
        if self.es_api_key:
            kwargs["api_key"] = self.es_api_key.get_secret_value()
        elif self.es_username and self.es_password:
            kwargs["basic_auth"] = (self.es_username, self.es_password.get_secret_value())
        if self.es_ca_certs:
            kwargs["ca_certs"] = str(self.es_ca_certs)
        return kwargs

    def redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis.from_url``."""
        kwargs: dict[str, object] = {}
        if self.redis_password:
            kwargs["password"] = self.redis_password.get_secret_value()
        return kwargs
