"""``otpflow doctor``'s connection estimate (README, Sizing Redis): what 1 web, 1 worker and 1 beat may open to
REDIS_URL with the settings, against the Redis's maxclients."""
from __future__ import annotations

from config.settings import Settings
from otpflow.doctor import Level, _connections, connection_estimate


def test_the_default_formation_opens_at_most_14() -> None:
    """What bench/connections.py measured at the peak of 16 concurrent clients: web 4, worker 9, beat 1."""
    need = connection_estimate(Settings())
    assert (need.web, need.worker, need.beat, need.total) == (4, 9, 1, 14)


def test_the_estimate_follows_the_settings() -> None:
    two = connection_estimate(Settings(redis_max_connections=2))
    assert (two.web, two.worker, two.beat) == (8, 13, 1)
    # no more state connections than threads to use them
    assert connection_estimate(Settings(redis_max_connections=10, web_threads=2)).web == 2 * 2 * 2
    bigger = connection_estimate(Settings(web_concurrency=3, worker_concurrency=4))
    assert (bigger.web, bigger.worker) == (6, 13)
    # on RabbitMQ, only state reaches Redis: no producers, no consumer, nothing from the beat
    amqp = connection_estimate(Settings(celery_broker_url="amqp://u:p@mq//"))
    assert (amqp.web, amqp.worker, amqp.beat) == (2, 3, 0)


def test_a_formation_that_cannot_fit_is_a_warning_with_the_fixes() -> None:
    [tight] = _connections(Settings(redis_max_connections=2), maxclients=20, connected=3)
    assert tight.level is Level.WARN and "may open 22 (web 8, worker 13, beat 1)" in tight.said
    assert tight.fix.startswith("set REDIS_MAX_CONNECTIONS=1, lower WEB_CONCURRENCY")
    [fits] = _connections(Settings(), maxclients=20, connected=3)
    assert fits.level is Level.OK and "open at most 14" in fits.said
    [at_one] = _connections(Settings(web_concurrency=6), maxclients=20, connected=3)
    assert at_one.level is Level.WARN and "REDIS_MAX_CONNECTIONS" not in at_one.fix  # already 1
    [busy] = _connections(Settings(), maxclients=20, connected=17)
    assert busy.level is Level.WARN and "17 of 20 in use" in busy.said
    assert list(_connections(Settings(), maxclients=0, connected=3)) == []
