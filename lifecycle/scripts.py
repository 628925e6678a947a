"""Load the Lua scripts shipped in ``lifecycle/lua`` (registered once per client; EVALSHA, loaded on NOSCRIPT)."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError


@lru_cache(maxsize=None)
def source(name: str) -> str:
    """The text of ``lifecycle/lua/<name>.lua``."""
    return resources.files("lifecycle").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


class LuaScript:
    """One shipped script bound to a client: ``EVALSHA`` straight through ``execute_command``, loaded on NOSCRIPT.

    Why not call redis-py's :class:`Script` every time: its ``__call__`` re-imports and re-checks for a pipeline
    and goes through ``evalsha``'s argument handling: about 22,000 instructions per call by callgrind (a webhook's
    whole cost is near 950,000: ``bench/ingress_instructions.py``), on the hot path of every webhook and every
    transition. Batches go through :class:`ScriptPipeline` (a bare EVALSHA queued); any other pipeline goes
    through that Script, which registers the script with the pipeline so a NOSCRIPT there is handled too.
    """

    def __init__(self, client: redis.Redis, name: str) -> None:
        self.client = client
        self.name = name
        self.script: Script = client.register_script(source(name))

    @property
    def sha(self) -> str:
        return str(self.script.sha)

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        if isinstance(client, ScriptPipeline):
            return client.queue(self, keys, args)
        if client is not None and client is not self.client:
            return self.script(keys=keys, args=args, client=client)
        try:
            return self.client.execute_command("EVALSHA", self.script.sha, len(keys), *keys, *args)
        except NoScriptError:
            # a restarted or flushed server, or another server behind the same client: load it again
            self.script.sha = self.client.script_load(self.script.script)
            return self.client.execute_command("EVALSHA", self.script.sha, len(keys), *keys, *args)


class ScriptPipeline:
    """A pipeline (not a transaction) of script calls, one round trip for a batch (the sweep's re-arms, the
    drain's codes).

    redis-py's Script queued on a pipeline makes ``execute`` send ``SCRIPT EXISTS`` first: one more round trip for
    every batch. Here each call is queued as a bare EVALSHA; a NOSCRIPT answer (a restarted or flushed server)
    runs that call again through :class:`LuaScript`, which loads the script, after the batch and in the batch's
    order. Any other answer that is an error is raised, as ``execute`` would.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.pipe = client.pipeline(transaction=False)
        self._calls: list[tuple[int, LuaScript, Sequence[Any], Sequence[Any]]] = []

    def queue(self, lua: LuaScript, keys: Sequence[Any], args: Sequence[Any]) -> None:
        self._calls.append((len(self.pipe), lua, keys, args))
        self.pipe.execute_command("EVALSHA", lua.sha, len(keys), *keys, *args)

    def __len__(self) -> int:
        return len(self.pipe)

    def execute(self) -> list[Any]:
        """Every queued call's answer, in order."""
        calls, self._calls = self._calls, []
        if not len(self.pipe):
            return []
        results = list(self.pipe.execute(raise_on_error=False))
        for index, lua, keys, args in calls:
            if isinstance(results[index], NoScriptError):
                results[index] = lua(keys, args)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results


def script(client: redis.Redis, name: str) -> LuaScript:
    """The script ``name`` bound to ``client``."""
    return LuaScript(client, name)
