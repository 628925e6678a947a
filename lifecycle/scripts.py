"""Load the Lua scripts shipped in ``lifecycle/lua`` (registered once per client; EVALSHA with EVAL fallback)."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import redis
from redis.commands.core import Script


@lru_cache(maxsize=None)
def source(name: str) -> str:
    """The text of ``lifecycle/lua/<name>.lua``."""
    return resources.files("lifecycle").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def script(client: redis.Redis, name: str) -> Script:
    """A redis-py Script object bound to ``client`` (it retries with SCRIPT LOAD on NOSCRIPT)."""
    return client.register_script(source(name))
