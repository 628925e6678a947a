"""Dialect profiles are data: names, quirks of docs/dialects.md, and a clear error for an unknown name."""
from __future__ import annotations

import pytest

from provider import DIALECTS, Dialect, ProviderClient, UnknownDialect, get_dialect


def test_required_profiles_exist():
    assert {"sms-activate", "herosms", "grizzly", "smshub", "vaksms", "generic"} <= set(DIALECTS)


@pytest.mark.parametrize("name,field,value", [
    ("sms-activate", "cancel_status", 8),
    ("grizzly", "cancel_status", -1),
    ("herosms", "set_status_accepts_204", True),
    ("sms-activate", "set_status_accepts_204", False),
    ("herosms", "title_errors", True),
    ("herosms", "active_activations_in_data", True),
    ("herosms", "supports_status_ready", False),
    ("herosms", "has_list_of_top_countries", False),
    ("vaksms", "bad_action_means_bad_key", True),
    ("sms-activate", "bad_action_means_bad_key", False),
    ("smshub", "has_active_activations", False),
    ("sms-activate", "multi_forward_param", "multiForward"),
    ("herosms", "base_url", "https://hero-sms.com/stubs/handler_api.php"),
    ("grizzly", "base_url", "https://api.grizzlysms.com/stubs/handler_api.php"),
    ("vaksms", "base_url", "https://vak-sms.com/stubs/handler_api.php"),
    ("smshub", "base_url", "https://smshub.org/stubs/handler_api.php"),
])
def test_profile_quirks(name, field, value):
    assert getattr(get_dialect(name), field) == value


@pytest.mark.parametrize("spelling,name", [("HeroSMS", "herosms"), ("hero-sms", "herosms"),
                                           (" SMS-Activate ", "sms-activate"), ("vak-sms", "vaksms")])
def test_lookup_is_forgiving(spelling, name):
    assert get_dialect(spelling).name == name


def test_unknown_dialect_is_a_clear_error():
    with pytest.raises(UnknownDialect) as info:
        get_dialect("smsactivat")
    assert "smsactivat" in str(info.value) and "herosms" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownDialect):
        ProviderClient("k" * 10, dialect="nope")


def test_base_url_override_and_custom_dialect():
    client = ProviderClient("key-123456", dialect="herosms", base_url="http://127.0.0.1:9/stubs/handler_api.php")
    assert client.base_url.startswith("http://127.0.0.1:9") and client.dialect.name == "herosms"
    custom = Dialect(name="mine", base_url="http://x/stubs/handler_api.php", cancel_status=10)
    assert get_dialect(custom) is custom
    assert ProviderClient("key-123456", dialect=custom).base_url == "http://x/stubs/handler_api.php"
