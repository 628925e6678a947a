"""CELERY_BROKER_URL: which URLs it takes, that its password never shows, and the Celery options each broker gets."""
from __future__ import annotations

import ssl

import pytest

from config.settings import ConfigError, Settings
from worker.celery_app import QUEUE, BrokerKind, broker_kind, broker_url, celery_config, make_celery

AMQP = "amqp://otpuser:s3cr3t-pass@rabbit.example.com:5672/otpvhost"


def test_empty_means_the_messages_stay_on_redis_url() -> None:
    for env in ({}, {"CELERY_BROKER_URL": ""}, {"CELERY_BROKER_URL": "  "}):
        settings = Settings.from_env({"REDIS_URL": "redis://r.example.com:6379/3", **env})
        assert settings.celery_broker_url == ""
        assert broker_url(settings) == "redis://r.example.com:6379/3"
        conf = celery_config(settings)
        assert conf["broker_url"] == "redis://r.example.com:6379/3"
        assert conf["task_default_queue"] == QUEUE == "otpflow"


@pytest.mark.parametrize("url", [
    AMQP, "amqps://u:p@host.rmq.cloudamqp.com/vhost", "pyamqp://guest:guest@127.0.0.1:5672//",
    "amqp://127.0.0.1", "redis://:pw@other-redis:6379/2", "rediss://:pw@other-redis:6380/0",
])
def test_accepted_urls(url: str) -> None:
    assert Settings.from_env({"CELERY_BROKER_URL": url}).celery_broker_url == url


@pytest.mark.parametrize("url, says", [
    ("http://user:topsecret@rabbit:15672/", "got scheme 'http'"),
    ("rabbit.example.com:5672", "got no scheme"),
    ("unix:///tmp/redis.sock", "got scheme 'unix'"),
    ("sqs://key:topsecret@", "got scheme 'sqs'"),
    ("amqp://user:topsecret@/vhost", "expected a host after amqp://"),
    ("amqp://", "expected a host after amqp://"),
])
def test_a_bad_url_stops_start_up_with_one_line_naming_the_variable(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"CELERY_BROKER_URL": url})
    (problem,) = info.value.problems
    assert problem.startswith("CELERY_BROKER_URL: ") and says in problem, problem
    assert "\n" not in problem and "topsecret" not in str(info.value)


def test_otpflow_config_masks_its_password(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from otpflow.commands import show_config

    monkeypatch.setenv("CELERY_BROKER_URL", AMQP)
    monkeypatch.setenv("REDIS_URL", "redis://:redis-pass-42@r.example.com:6379/0")
    assert show_config(None) == 0
    out = capsys.readouterr().out
    assert "s3cr3t-pass" not in out and "redis-pass-42" not in out
    assert "amqp://otpuser:***@rabbit.example.com:5672/otpvhost" in out


def test_log_lines_mask_its_password() -> None:
    from config.logging_setup import redact

    assert redact(f"connecting to {AMQP}") == "connecting to amqp://otpuser:***@rabbit.example.com:5672/otpvhost"


def test_amqp_gets_heartbeats_and_confirmed_publishes_and_no_redis_options() -> None:
    settings = Settings.from_env({"CELERY_BROKER_URL": AMQP, "REDIS_URL": "rediss://:p@r.example.com:6380/0",
                                  "KEY_PREFIX": "shop-a"})
    assert broker_kind(broker_url(settings)) is BrokerKind.AMQP
    conf = celery_config(settings)
    assert conf["broker_url"] == AMQP
    assert conf["broker_heartbeat"] > 0 and conf["broker_connection_timeout"] > 0
    assert conf["broker_transport_options"] == {"confirm_publish": True}
    assert "broker_use_ssl" not in conf  # the rediss:// of REDIS_URL is not the broker's
    assert conf["redis_backend_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_NONE}
    # acknowledged late, one task per process, and re-delivered when the process dies: on AMQP as on Redis
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"] and conf["worker_prefetch_multiplier"] == 1
    # a broker of its own may be shared: the queue is named after KEY_PREFIX
    assert conf["task_default_queue"] == "shop-a"
    assert conf["task_routes"]["otpflow.*"] == {"queue": "shop-a"}


def test_redis_keeps_its_transport_options_on_either_url() -> None:
    on_redis_url = celery_config(Settings.from_env({"REDIS_URL": "rediss://:p@r.example.com:6380/0",
                                                    "BROKER_VISIBILITY_TIMEOUT": "120"}))
    separate = celery_config(Settings.from_env({"CELERY_BROKER_URL": "rediss://:p@b.example.com:6380/1",
                                                "BROKER_VISIBILITY_TIMEOUT": "120"}))
    for conf in (on_redis_url, separate):
        opts = conf["broker_transport_options"]
        assert opts["visibility_timeout"] == 120 and opts["socket_timeout"] and opts["socket_connect_timeout"]
        assert conf["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_NONE}
        assert "broker_heartbeat" not in conf
    assert separate["broker_url"] == "rediss://:p@b.example.com:6380/1"
    plain = celery_config(Settings.from_env({"CELERY_BROKER_URL": "redis://b.example.com:6379/1"}))
    assert "broker_use_ssl" not in plain


def test_publishers_and_workers_get_the_same_broker_from_one_factory() -> None:
    """The web (webhook/context.py) and the CLI (otpflow/commands.py) publish through ``make_celery``."""
    from webhook.context import LazyCelery

    settings = Settings.from_env({"CELERY_BROKER_URL": AMQP})
    for app in (make_celery(settings), LazyCelery(settings).get()):
        assert app.conf.broker_url == AMQP
        assert app.connection_for_write().transport.driver_type == "amqp"
        assert app.conf.broker_transport_options["confirm_publish"] is True


def test_amqps_checks_the_certificate_and_the_host_name() -> None:
    conf = celery_config(Settings.from_env({"CELERY_BROKER_URL": "amqps://u:p@goose.rmq.cloudamqp.com/vh"}))
    assert conf["broker_use_ssl"] == {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": "goose.rmq.cloudamqp.com"}
    assert "broker_use_ssl" not in celery_config(Settings.from_env({"CELERY_BROKER_URL": AMQP}))


def test_the_web_publisher_keeps_its_short_patience_on_either_broker() -> None:
    from webhook.context import AMQP_PRODUCER_TRANSPORT_OPTIONS, PRODUCER_TRANSPORT_OPTIONS, LazyCelery

    amqp = LazyCelery(Settings(celery_broker_url="amqp://guest:guest@127.0.0.1:5672//")).get()
    assert AMQP_PRODUCER_TRANSPORT_OPTIONS.items() <= amqp.conf.broker_transport_options.items()
    assert "socket_timeout" not in amqp.conf.broker_transport_options
    redis_app = LazyCelery(Settings()).get()
    assert PRODUCER_TRANSPORT_OPTIONS.items() <= redis_app.conf.broker_transport_options.items()
