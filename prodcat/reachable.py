"""Elasticsearch and Redis checked before a command relies on them (Kafka: ``prodcat.kafka.connect_admin``).

A command that needs the running stack fails in a second or so with one line naming the
service, its address and the setting to change, not with a client library's traceback.
"""

from __future__ import annotations

import elastic_transport
import redis
from elasticsearch import ApiError, AuthenticationException, Elasticsearch

from prodcat.errors import ConfigError, StackError
from prodcat.settings import Settings

__all__ = ["CHECK_TIMEOUT_S", "elasticsearch_client", "redis_client"]

# one quick try: a service that is up answers a ping in milliseconds; the commands' own calls keep their timeouts
CHECK_TIMEOUT_S = 5.0


def elasticsearch_client(settings: Settings) -> Elasticsearch:
    """A client on an Elasticsearch that answered; StackError/ConfigError naming the setting otherwise."""
    es = Elasticsearch(**settings.es_client_kwargs())
    try:
        es.options(request_timeout=CHECK_TIMEOUT_S, max_retries=0).info()
    except AuthenticationException:
        raise ConfigError(f"Elasticsearch at {settings.es_url} refused the credentials; set PRODCAT_ES_API_KEY "
                          "or PRODCAT_ES_USERNAME/PRODCAT_ES_PASSWORD") from None
    except (elastic_transport.TransportError, ApiError) as exc:
        raise StackError(f"Elasticsearch at {settings.es_url} is unreachable ({exc.message}); "
                         "start it with `prodcat stack up` or set PRODCAT_ES_URL") from None
    return es


def redis_client(settings: Settings) -> redis.Redis:
    """A client on a Redis that answered a ping; StackError/ConfigError naming the setting otherwise."""
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=CHECK_TIMEOUT_S,
                                      **settings.redis_kwargs())
    except ValueError as exc:  # redis-py's message for a bad scheme or port
        raise ConfigError(f"PRODCAT_REDIS_URL={settings.redis_url!r} is not a Redis URL ({exc})") from None
    try:
        client.ping()
    except redis.AuthenticationError:
        raise ConfigError(f"Redis at {settings.redis_url} refused the password; set PRODCAT_REDIS_PASSWORD") from None
    except redis.RedisError as exc:
        raise StackError(f"Redis at {settings.redis_url} is unreachable ({exc}); "
                         "start it with `prodcat stack up` or set PRODCAT_REDIS_URL") from None
    return client
