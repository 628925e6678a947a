"""Redis memory per waiting activation (its record with the short history, its activation index entry and its
deadline member), measured: ≤ 512 B on valkey 8+ (the embedded server), ≤ 560 B on Redis 7 (every key and zset
member costs about 50 B more there: the key is not stored inside its value object; and 2,000 entries leave the
1,024 index buckets sparse, so each carries more of its bucket's own cost). ``bench/sweep.py`` measures the same
through the real purchase flow at 10,000, with the listing and open-slot entries beside them."""
from __future__ import annotations

from typing import Any

from config.settings import Settings
from tests.unit.lifecycle.conftest import make_orders
from lifecycle.activation.record import OrderRequest

N = 2000


def budget(client: Any) -> int:
    return 512 if client.info("server").get("valkey_version") else 560


def test_memory_per_waiting_activation(real_redis: Any) -> None:
    settings = Settings(key_prefix="memtest")
    svc = make_orders(real_redis, settings)
    dkey = settings.key("deadlines")
    real_redis.delete(dkey)
    for i in range(N):
        oid = f"{i:032x}"  # uuid-sized ids, as generated
        svc.submit(OrderRequest("tg", country=0, max_price=None, order_id=oid))
        svc.store.start_buying(oid)
        svc.store.assign_number(oid, provider="sms-activate", activation_id=str(3_900_000_000 + i),
                                phone=f"7999{i:07d}", cost="12.50", currency=840)
    real_redis.delete(settings.events_stream)  # events are trimmed by length; not per-activation state
    sample = range(0, N, 50)
    per_record = sum(int(real_redis.memory_usage(settings.key("order", f"{i:032x}"), samples=0) or 0)
                     for i in sample) / len(sample)
    buckets = list(real_redis.scan_iter(match=settings.key("aix", "sms-activate", "*"), count=1000))
    per_index = sum(int(real_redis.memory_usage(k, samples=0) or 0) for k in buckets) / N
    per_deadline = int(real_redis.memory_usage(dkey, samples=0) or 0) / N
    total = per_record + per_index + per_deadline
    print(f"memory per waiting activation: record {per_record:.0f} B + index {per_index:.0f} B + "
          f"deadline {per_deadline:.0f} B = {total:.0f} B")
    assert per_index > 0 and real_redis.object("encoding", settings.key("order", f"{0:032x}")) == "listpack"
    assert {real_redis.object("encoding", k) for k in buckets} == {"listpack"}
    real_redis.delete(*buckets)
    assert total <= budget(real_redis)
