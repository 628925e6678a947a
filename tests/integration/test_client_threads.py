"""One ProviderClient shared by several threads (as ``otpflow.finish_coded`` does) against the sandbox over HTTP."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Iterator

import pytest

from provider import ProviderClient
from provider.models import ActivationState
from sandbox import SandboxConfig, create_app
from sandbox.server import serve_in_thread

pytestmark = pytest.mark.http


@pytest.fixture
def client() -> Iterator[ProviderClient]:
    server = serve_in_thread(create_app(SandboxConfig(api_key="threads-key", balance=Decimal("1000"), stock=500)))
    try:
        with ProviderClient("threads-key", base_url=f"{server.url}/stubs/handler_api.php") as shared:
            yield shared
    finally:
        server.stop()


def test_eight_threads_share_one_client(client: ProviderClient) -> None:
    activations = [client.get_number_v2("tg", country=0, order_id=f"t-{i}") for i in range(16)]

    def work(index: int) -> tuple[str, ActivationState, str]:
        activation = activations[index]
        status = client.get_status(activation.activation_id)
        answer = client.set_status(activation.activation_id, 1)
        return activation.activation_id, status.state, answer

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(len(activations))))
    assert [r[0] for r in results] == [a.activation_id for a in activations]
    assert all(state is ActivationState.WAIT_CODE for _, state, _ in results)
    assert all(answer == "ACCESS_READY" for _, _, answer in results)
