"""Settings from the environment: defaults, and a clear error naming any bad value."""

from __future__ import annotations

import pytest

from gateway.config import Config, ConfigError

BASE = {"DATABASE_URL": "postgresql://u@h/db"}


def test_defaults_follow_the_contract():
    config = Config.from_env(BASE)
    assert config.port == 8002
    assert config.host is None  # every interface
    assert config.max_body_bytes == 8 * 1024 * 1024
    assert config.auth_cache_ttl_s <= 4  # a revoked key stops working within 5 s
    assert config.jwt_secret is None
    assert config.search_indexer and config.search_index_interval_s == 0.25  # q= finds a card within 1 s


def test_every_setting_is_read_from_its_variable():
    config = Config.from_env(
        BASE
        | {
            "PORT": "9000",
            "HOST": "127.0.0.1",
            "CARDS_JWT_SECRET": "s" * 32,
            "CARDS_DB_POOL_MIN": "0",
            "CARDS_DB_POOL_MAX": "3",
            "CARDS_MAX_BODY_BYTES": "2048",
            "CARDS_LOG_LEVEL": "debug",
            "CARDS_STATEMENT_TIMEOUT_MS": "250",
            "CARDS_POOL_TIMEOUT_S": "0.5",
            "CARDS_AUTH_CACHE_TTL_S": "1.5",
            "CARDS_SEARCH_INDEXER": "0",
            "CARDS_SEARCH_INDEX_INTERVAL_S": "2",
        }
    )
    assert (config.search_indexer, config.search_index_interval_s) == (False, 2.0)
    assert (config.port, config.jwt_secret, config.pool_min, config.pool_max) == (9000, "s" * 32, 0, 3)
    assert (config.max_body_bytes, config.log_level, config.statement_timeout_ms) == (2048, "DEBUG", 250)
    assert (config.pool_timeout_s, config.auth_cache_ttl_s) == (0.5, 1.5)
    assert config.host == "127.0.0.1"


def test_a_missing_database_url_is_an_error():
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        Config.from_env({})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "http", "PORT must be an integer >= 1 and <= 65535, got 'http'"),
        ("PORT", "70000", "PORT must be an integer >= 1 and <= 65535"),
        ("CARDS_DB_POOL_MAX", "0", "CARDS_DB_POOL_MAX must be an integer >= 1"),
        ("CARDS_MAX_BODY_BYTES", "1.5", "CARDS_MAX_BODY_BYTES must be an integer"),
        ("CARDS_POOL_TIMEOUT_S", "nan", "CARDS_POOL_TIMEOUT_S must be a number"),
        ("CARDS_AUTH_CACHE_TTL_S", "10", "CARDS_AUTH_CACHE_TTL_S must be a number >= 0 and <= 4"),
        ("CARDS_LOG_LEVEL", "chatty", "CARDS_LOG_LEVEL must be one of"),
        ("CARDS_JWT_SECRET", "short", "CARDS_JWT_SECRET: a JWT secret must be at least 32 bytes"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(name, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Config.from_env(BASE | {name: value})


def test_a_pool_minimum_above_its_maximum_is_an_error():
    with pytest.raises(ConfigError, match="CARDS_DB_POOL_MIN"):
        Config.from_env(BASE | {"CARDS_DB_POOL_MIN": "5", "CARDS_DB_POOL_MAX": "2"})
