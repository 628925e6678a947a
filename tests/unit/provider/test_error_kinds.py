"""Every provider error knows its kind and its label: one classification table, carried by the classes."""
from __future__ import annotations

import pickle
import re

import pytest

from provider import errors as E
from provider.errors import ErrorKind as K

LABEL = re.compile(r"^[a-z_]+$")

EXPORTED = sorted({cls for name in E.__all__ if isinstance(cls := getattr(E, name), type)
                   and issubclass(cls, E.ProviderError)}, key=lambda c: c.__name__)
REGISTERED = sorted(set(E.ERROR_CLASSES.values()), key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", sorted(set(EXPORTED) | set(REGISTERED), key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_every_error_class_has_a_kind_and_a_label(cls: type[E.ProviderError]) -> None:
    assert isinstance(cls.kind, K)
    assert cls.label and LABEL.match(cls.label), cls.label
    assert "label" in cls.__dict__, "each class carries its own label, not its parent's by accident"


def test_registry_classes_are_all_exported() -> None:
    assert set(REGISTERED) <= set(EXPORTED)


def test_kind_values_are_lower_snake_case() -> None:
    assert all(LABEL.match(k.value) and k.value == k.name.lower() for k in K)


# (class, kind, label): a representative row of every kind, plus the explicit labels and the family defaults
ROWS = [
    (E.NetworkError, K.OUTAGE, "network_error"),
    (E.Timeout, K.OUTAGE, "timeout"),
    (E.ConnectTimeout, K.OUTAGE, "connect_timeout"),
    (E.ReadTimeout, K.OUTAGE, "read_timeout"),
    (E.ServerError, K.OUTAGE, "server_error"),
    (E.SqlError, K.OUTAGE, "error_sql"),
    (E.GenericServerError, K.OUTAGE, "server_error"),
    (E.RateLimited, K.RATE_LIMITED, "rate_limit"),
    (E.ChannelsLimit, K.CAPACITY, "channels_limit"),
    (E.NoNumbers, K.NO_STOCK, "no_numbers"),
    (E.OutOfStock, K.NO_STOCK, "out_of_stock"),
    (E.AccountInactive, K.NO_STOCK, "account_inactive"),
    (E.ServiceNotAvailable, K.NO_STOCK, "whatsapp_not_available"),
    (E.NoBalance, K.NO_BALANCE, "no_balance"),
    (E.NoBalanceForward, K.NO_BALANCE, "no_balance"),
    (E.WrongMaxPrice, K.PRICE_TOO_LOW, "wrong_max_price"),
    (E.BadKey, K.ACCOUNT_BLOCKED, "bad_key"),
    (E.NoKey, K.ACCOUNT_BLOCKED, "bad_key"),
    (E.Banned, K.ACCOUNT_BLOCKED, "banned"),
    (E.RegionRestricted, K.ACCOUNT_BLOCKED, "region_restricted"),
    (E.BadService, K.BAD_REQUEST, "bad_service"),
    (E.BadCountry, K.BAD_REQUEST, "bad_country"),
    (E.ServiceProhibited, K.BAD_REQUEST, "service_prohibited"),
    (E.MaxHoursExceed, K.BAD_REQUEST, "max_hours_exceed"),
    (E.WrongOperator, K.BAD_REQUEST, "wrong_operator"),
    (E.NotIncoming, K.BAD_REQUEST, "not_incoming"),
    (E.BadAction, K.UNSUPPORTED, "bad_action"),
    (E.BadActionOrKey, K.UNSUPPORTED, "bad_action"),
    (E.NotSupported, K.UNSUPPORTED, "not_supported"),
    (E.ConfigurationError, K.MISCONFIGURED, "configuration"),
    (E.OrderAlreadyExists, K.ALREADY_ORDERED, "order_already_exists"),
    (E.EarlyCancelDenied, K.TOO_EARLY, "early_cancel_denied"),
    (E.FreeCancellationExpired, K.CANCEL_WINDOW_CLOSED, "free_cancellation_expired"),
    (E.CantCancel, K.CANCEL_WINDOW_CLOSED, "cant_cancel"),
    (E.NoActivation, K.CLOSED, "no_activation"),
    (E.WrongActivationId, K.CLOSED, "wrong_activation_id"),
    (E.ActivationNotActive, K.CLOSED, "activation_not_active"),
    (E.NoIdRent, K.CLOSED, "no_id_rent"),
    (E.InvalidPhone, K.CLOSED, "invalid_phone"),
    (E.AlreadyFinished, K.FINISHED, "already_finish"),
    (E.RentFinished, K.FINISHED, "status_finish"),
    (E.AlreadyCancelled, K.CANCELLED, "already_cancel"),
    (E.ActivationCancelled, K.CANCELLED, "status_cancel"),
    (E.RentRevoked, K.CANCELLED, "status_revoke"),
    (E.OtpReceived, K.CODE_ARRIVED, "otp_received"),
    (E.NewOtpReceived, K.CODE_ARRIVED, "new_otp_received"),
    (E.BadStatus, K.WRONG_STATE, "bad_status"),
    (E.IncorrectStatus, K.WRONG_STATE, "incorect_status"),
    (E.RentDie, K.EXPIRED, "rent_die"),
    (E.UnexpectedAnswer, K.UNREADABLE, "unexpected_answer"),
    (E.RentWaitCode, K.OTHER, "status_wait_code"),
    (E.NoCall, K.OTHER, "no_call"),
    (E.OperatorsNotFound, K.OTHER, "operators_not_found"),
    (E.NoMetrics, K.OTHER, "no_metrics"),
    (E.TransientError, K.OUTAGE, "transient_error"),
    (E.BusinessError, K.OTHER, "business_error"),
    (E.FatalError, K.BAD_REQUEST, "fatal_error"),
]


@pytest.mark.parametrize("cls,kind,label", ROWS, ids=[c.__name__ for c, _, _ in ROWS])
def test_mapping(cls: type[E.ProviderError], kind: K, label: str) -> None:
    assert (cls.kind, cls.label) == (kind, label)


def test_rows_cover_every_kind() -> None:
    assert {kind for _, kind, _ in ROWS} == set(K)


def test_instances_built_from_wire_codes_carry_their_class_values() -> None:
    err = E.error_for_code("NO_MEANS")
    assert isinstance(err, E.NoBalance) and (err.kind, err.label) == (K.NO_BALANCE, "no_balance")
    vak = E.error_for_code("BAD_ACTION", bad_action_means_bad_key=True)
    assert isinstance(vak, E.BadActionOrKey) and (vak.kind, vak.label) == (K.UNSUPPORTED, "bad_action")


def test_subclass_defaults() -> None:
    class ProviderQuirk(E.BusinessError):
        pass

    class CodedQuirk(E.FatalError):
        default_code = "SOME_QUIRK"

    assert (ProviderQuirk.kind, ProviderQuirk.label) == (K.OTHER, "provider_quirk")
    assert (CodedQuirk.kind, CodedQuirk.label) == (K.BAD_REQUEST, "some_quirk")


@pytest.mark.parametrize("err", [E.NoBalanceForward(code="NO_BALANCE_FORWARD", argument="x"),
                                 E.RateLimited(retry_after=3.0), E.ReadTimeout("t", possibly_processed=True),
                                 E.BadActionOrKey()], ids=lambda e: type(e).__name__)
def test_kind_and_label_survive_pickling(err: E.ProviderError) -> None:
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is type(err)
    assert (clone.kind, clone.label, clone.code) == (err.kind, err.label, err.code)
