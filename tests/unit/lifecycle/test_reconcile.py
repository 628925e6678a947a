"""Pure reconciliation decisions: never backwards, codes deduplicated."""
from __future__ import annotations

from lifecycle.activation.reconcile import Action, decide, observe_listed, observe_status
from lifecycle.activation.machine import State
from lifecycle.activation.record import Order


def order(state: State, codes: tuple[str, ...] = ()) -> Order:
    return Order(order_id="o", state=state, service="tg", activation_id="1", codes=codes)


def test_code_from_status() -> None:
    d = decide(order(State.WAITING), observe_status("CODE_RECEIVED", "123"))
    assert d.action is Action.CODE and d.codes == ("123",)


def test_known_code_is_nothing() -> None:
    assert decide(order(State.CODE_RECEIVED, ("123",)), observe_status("CODE_RECEIVED", "123")).action is Action.NOTHING


def test_wait_retry_shows_old_code() -> None:
    assert decide(order(State.WAITING_RETRY, ("1",)), observe_status("WAIT_RETRY", "1")).action is Action.NOTHING
    assert decide(order(State.WAITING_RETRY, ("1",)), observe_listed(["1"])).action is Action.NOTHING
    d = decide(order(State.WAITING_RETRY, ("1",)), observe_listed(["1", "2"]))
    assert d.action is Action.CODE and d.codes == ("2",)


def test_closed() -> None:
    assert decide(order(State.WAITING), observe_status("CANCELLED")).action is Action.CANCELLED
    assert decide(order(State.WAITING_RETRY, ("1",)), observe_status("CANCELLED")).action is Action.FINISHED


def test_stale_answers_never_move_terminal_or_pre_number_orders() -> None:
    for state in (State.FINISHED, State.CANCELLED, State.FAILED, State.PENDING, State.BUYING):
        for obs in (observe_status("CODE_RECEIVED", "9"), observe_status("CANCELLED"), observe_listed([])):
            assert decide(order(state), obs).action is Action.NOTHING


def test_waiting_listed_without_code() -> None:
    assert decide(order(State.WAITING), observe_listed([])).action is Action.NOTHING
    assert decide(order(State.WAITING), observe_status("WAIT_CODE")).action is Action.NOTHING
