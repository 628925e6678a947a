from __future__ import annotations

import ipaddress
import logging

import pytest

from config.logging_setup import RedactingFilter, redact
from config.settings import ROLES, ConfigError, Settings, declarations


def test_defaults_match_the_documented_contract() -> None:
    s = Settings.from_env({})
    assert s.events_stream == "otpflow:events"
    assert s.activation_timeout == 1200
    assert s.poll_after == 30
    assert s.provider == "sms-activate"
    assert s.worker_soft_shutdown_timeout < 30


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"PORT": "http", "POLL_AFTER": "-3", "AUTO_FINISH": "maybe", "REDIS_URL": "localhost"})
    text = str(info.value)
    for name in ("PORT", "POLL_AFTER", "AUTO_FINISH", "REDIS_URL"):
        assert name in text
    assert len(info.value.problems) == 4


def test_roles_require_their_secrets() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({}).require("web")
    assert "WEBHOOK_TOKEN" in str(info.value) and "API_TOKEN" in str(info.value)
    with pytest.raises(ConfigError, match="PROVIDER_API_KEY"):
        Settings.from_env({}).require("worker")
    with pytest.raises(ConfigError, match="too short"):
        Settings.from_env({"WEBHOOK_TOKEN": "short", "API_TOKEN": "x" * 20}).require("web")
    ok = Settings.from_env({"WEBHOOK_TOKEN": "w" * 20, "API_TOKEN": "a" * 20}).require("web")
    assert ok.webhook_token == "w" * 20


def test_secrets_never_show_in_repr_or_public_dict() -> None:
    s = Settings.from_env({"PROVIDER_API_KEY": "sekret-key-123", "WEBHOOK_TOKEN": "tok" * 8, "API_TOKEN": "api" * 8})
    assert "sekret-key-123" not in repr(s)
    assert "sekret-key-123" not in str(s.public_dict())
    assert s.public_dict()["provider_api_key"] == "***"


def test_parsers() -> None:
    s = Settings.from_env({"WEBHOOK_ALLOWED_IPS": "188.42.218.183, 10.0.0.0/8", "AUTO_FINISH": "off",
                           "TRUSTED_PROXIES": "1", "PROVIDER_URL": "https://hero-sms.com/stubs/handler_api.php/",
                           "REDIS_URL": "rediss://:p@h:6380/0"})
    assert s.webhook_allowed_ips == (ipaddress.ip_network("188.42.218.183/32"), ipaddress.ip_network("10.0.0.0/8"))
    assert s.auto_finish is False and s.trusted_proxies == 1
    assert s.provider_url == "https://hero-sms.com/stubs/handler_api.php"
    assert s.key("order", "x") == "otpflow:order:x"


def test_soft_shutdown_must_fit_herokus_30_seconds() -> None:
    with pytest.raises(ConfigError, match="WORKER_SOFT_SHUTDOWN_TIMEOUT"):
        Settings.from_env({"WORKER_SOFT_SHUTDOWN_TIMEOUT": "45"}).require("worker")


def test_every_field_is_declared_once() -> None:
    from dataclasses import fields

    declared = declarations()
    # every field but the resolved providers (built from PROVIDERS and PROVIDER_<NAME>_*: config/providers.py)
    assert [d.attr for d in declared] == [f.name for f in fields(Settings) if f.name != "provider_configs"]
    assert len({d.env for d in declared}) == len(declared)
    for d in declared:
        assert d.setting.doc and "\n" not in d.setting.doc, d.env
        assert d.setting.roles and set(d.setting.roles) <= set(ROLES), d.env


def test_secrets_are_declared_as_such_and_kept_out_of_repr() -> None:
    secret = {d.attr for d in declarations() if d.setting.secret}
    assert secret == {"provider_api_key", "webhook_token", "api_token"}
    from dataclasses import fields

    assert {f.name for f in fields(Settings) if not f.repr} == secret | {"provider_configs"}


def test_process_settings_formerly_read_elsewhere() -> None:
    s = Settings.from_env({})
    assert (s.web_concurrency, s.gunicorn_accesslog, s.worker_concurrency) == (2, "-", 2)
    assert s.prometheus_multiproc_dir is None
    s = Settings.from_env({"WEB_CONCURRENCY": "4", "GUNICORN_ACCESSLOG": "", "WORKER_CONCURRENCY": "3",
                           "PROMETHEUS_MULTIPROC_DIR": "/tmp/metrics"})
    assert (s.web_concurrency, s.gunicorn_accesslog, s.worker_concurrency) == (4, None, 3)
    assert s.prometheus_multiproc_dir == "/tmp/metrics"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"WEB_CONCURRENCY": "0", "WORKER_CONCURRENCY": "two"})
    assert [p.split(":")[0] for p in info.value.problems] == ["WEB_CONCURRENCY", "WORKER_CONCURRENCY"]


def test_blank_values_mean_the_default() -> None:
    s = Settings.from_env({"REDIS_URL": " ", "PROVIDER_URL": "", "PUBLIC_URL": "", "WEBHOOK_ALLOWED_IPS": "",
                           "DOWNSTREAM_TASK": "", "PORT": ""})
    assert s == Settings()


def test_keyword_construction_keeps_the_declared_defaults() -> None:
    s = Settings(poll_after=1.5, webhook_token="w" * 20)
    assert s.poll_after == 1.5 and s.redis_url == "redis://127.0.0.1:6379/0"
    assert "w" * 20 not in repr(s)


def test_redaction_of_keys_and_tokens() -> None:
    line = ("GET /stubs/handler_api.php?api_key=abc123&action=getBalance POST /webhooks/tok-secret "
            "Authorization: ApiKey zz")
    out = redact(line)
    assert "abc123" not in out and "tok-secret" not in out and "zz" not in out
    assert "action=getBalance" in out


def test_redacting_filter_scrubs_formatted_args() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "calling %s", ("https://p/x?api_key=K3Y&id=1",), None)
    RedactingFilter().filter(record)
    assert "K3Y" not in record.getMessage()


def test_redacting_filter_scrubs_tracebacks() -> None:
    import io
    import sys

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("otpflow.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ConnectionError("GET https://p/stubs/handler_api.php?api_key=SECRET42&action=getStatus failed")
        except ConnectionError:
            logger.exception("provider call failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "provider call failed" in out and "ConnectionError" in out
    assert "SECRET42" not in out
    assert sys.exc_info() == (None, None, None)
