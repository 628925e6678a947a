"""Fixtures for provider tests: a scripted requests adapter mounted on a real ``requests.Session``.

The adapter is the httpx-style "mock transport": the client under test is built exactly as in production, only
the session's adapter answers instead of the network, so timeouts, 5xx, 204 and retries go through the real code.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from provider import ProviderClient

API_KEY = "sk-Test_1234567890abcdef"
BASE_URL = "https://provider.test/stubs/handler_api.php"

Reply = tuple[int, str] | tuple[int, str, dict[str, str]] | BaseException


class ScriptedAdapter(BaseAdapter):
    """Answers each request with the next scripted reply (or a handler's); records every request it saw."""

    def __init__(self, replies: Iterable[Reply] | Callable[[requests.PreparedRequest], Reply] = ()) -> None:
        super().__init__()
        self.handler = replies if callable(replies) else None
        self.replies = [] if callable(replies) else list(replies)
        self.requests: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        self.requests.append(request)
        self.timeouts.append(timeout)
        reply = self.handler(request) if self.handler else self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        status, body, *rest = reply
        response = requests.Response()
        response.status_code = status
        response._content = body.encode("utf-8")
        response.headers = CaseInsensitiveDict(rest[0] if rest else {"Content-Type": "text/html; charset=UTF-8"})
        response.url = request.url or ""
        response.request = request
        response.encoding = None
        return response

    def close(self) -> None:
        pass

    # helpers for assertions
    def params(self, index: int = -1) -> dict[str, str]:
        """Query + form parameters of a recorded request."""
        request = self.requests[index]
        found = dict(parse_qsl(urlsplit(request.url or "").query, keep_blank_values=True))
        if request.body:
            body = request.body.decode() if isinstance(request.body, bytes) else request.body
            found.update(parse_qsl(body, keep_blank_values=True))
        return found

    def actions(self) -> list[str]:
        return [self.params(i).get("action", "") for i in range(len(self.requests))]


def make_client(replies: Any, dialect: str = "sms-activate", **kwargs: Any) -> tuple[ProviderClient, ScriptedAdapter]:
    """A client whose session answers from ``replies``; sleeping is recorded, not done."""
    adapter = ScriptedAdapter(replies)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    sleeps: list[float] = []
    kwargs.setdefault("sleep", sleeps.append)
    client = ProviderClient(API_KEY, dialect=dialect, base_url=kwargs.pop("base_url", BASE_URL), session=session,
                            **kwargs)
    client.sleeps = sleeps  # type: ignore[attr-defined]
    return client, adapter


@pytest.fixture
def scripted() -> Callable[..., tuple[ProviderClient, ScriptedAdapter]]:
    return make_client
