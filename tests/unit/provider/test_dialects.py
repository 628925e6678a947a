"""Dialect profiles are data: names and aliases, the quirks of docs/dialects.md, per-provider overrides, and a
clear error for an unknown name or a bad override."""
from __future__ import annotations

import dataclasses

import pytest

from provider import (
    DIALECTS, OVERRIDABLE, PRICE_ACTIONS, BadOverride, Dialect, ProviderClient, UnknownDialect, apply_overrides,
    get_dialect,
)
from provider import errors as E
from provider.dialects import canonical_name, dialect_names

PROFILES = ("sms-activate", "herosms", "grizzly", "smshub", "vaksms", "5sim", "smsman", "tigersms", "smsbower",
            "365sms", "onlinesim", "generic")


def test_every_profile_exists():
    assert set(PROFILES) == set(DIALECTS) == set(dialect_names())


@pytest.mark.parametrize("name", PROFILES)
def test_profile_loads_and_is_usable(name):
    dialect = get_dialect(name)
    assert dialect.name == name
    assert dialect.base_url.endswith("/stubs/handler_api.php")
    assert dialect.base_url.startswith(("https://", "http://"))
    assert dialect.price_action in PRICE_ACTIONS
    assert dialect.purchase_action in ("getNumberV2", "getNumber")
    assert not dialect.idempotent_purchase or dialect.has_number_v2
    with ProviderClient("key-123456", dialect=name) as client:
        assert client.base_url == dialect.base_url


@pytest.mark.parametrize("spelling,name", [
    ("hero", "herosms"), ("herosms", "herosms"), ("hero-sms", "herosms"), ("HeroSMS", "herosms"),
    ("hero_sms", "herosms"), ("grizzly", "grizzly"), ("grizzlysms", "grizzly"), ("smshub", "smshub"),
    ("sms-hub", "smshub"), ("vak", "vaksms"), ("vaksms", "vaksms"), ("vak-sms", "vaksms"), ("5sim", "5sim"),
    ("fivesim", "5sim"), ("smsman", "smsman"), ("sms-man", "smsman"), ("tiger", "tigersms"),
    ("tigersms", "tigersms"), ("tiger-sms", "tigersms"), ("smsbower", "smsbower"), ("bower", "smsbower"),
    ("365sms", "365sms"), ("onlinesim", "onlinesim"), ("OnlineSim", "onlinesim"), ("sms-activate", "sms-activate"),
    ("smsactivate", "sms-activate"), (" SMS-Activate ", "sms-activate"), ("sms_activate", "sms-activate"),
    ("generic", "generic"),
])
def test_aliases_resolve(spelling, name):
    assert get_dialect(spelling).name == name


def test_aliases_are_unique_across_profiles():
    seen: dict[str, str] = {}
    for dialect in DIALECTS.values():
        for alias in (dialect.name, *dialect.aliases):
            key = canonical_name(alias)
            assert seen.setdefault(key, dialect.name) == dialect.name, f"{alias} names two profiles"


@pytest.mark.parametrize("name,field,value", [
    ("sms-activate", "cancel_status", 8),
    ("grizzly", "cancel_status", -1),
    ("smsman", "cancel_status", -1),
    ("herosms", "cancel_status", 8),
    ("herosms", "set_status_accepts_204", True),
    ("sms-activate", "set_status_accepts_204", False),
    ("generic", "set_status_accepts_204", True),
    ("herosms", "title_errors", True),
    ("herosms", "active_activations_in_data", True),
    ("herosms", "supports_status_ready", False),
    ("herosms", "has_list_of_top_countries", False),
    ("herosms", "keyless_catalogue", True),
    ("vaksms", "bad_action_means_bad_key", True),
    ("vaksms", "has_list_of_top_countries", False),
    ("sms-activate", "bad_action_means_bad_key", False),
    ("smshub", "has_active_activations", False),
    ("smshub", "has_list_of_top_countries", False),
    ("smshub", "max_price_needs_currency", True),
    ("onlinesim", "rent_finish_supported", False),
    ("grizzly", "default_currency", 643),
    ("sms-activate", "default_currency", 840),
    ("grizzly", "price_variants", ("getPricesV2", "getPricesV3")),
    ("smsbower", "price_variants", ("getPricesV2", "getPricesV3")),
    ("grizzly", "supports_provider_ids", True),
    ("tigersms", "supports_provider_ids", True),
    ("sms-activate", "multi_forward_param", "multiForward"),
    ("herosms", "webhook_sources", ("84.32.223.53", "185.138.88.87")),
    ("sms-activate", "webhook_sources", ("188.42.218.183", "142.91.156.119")),
    ("sms-activate", "base_url", "https://api.sms-activate.ae/stubs/handler_api.php"),
    ("herosms", "base_url", "https://hero-sms.com/stubs/handler_api.php"),
    ("grizzly", "base_url", "https://api.grizzlysms.com/stubs/handler_api.php"),
    ("vaksms", "base_url", "https://vak-sms.com/stubs/handler_api.php"),
    ("smshub", "base_url", "https://smshub.org/stubs/handler_api.php"),
    ("5sim", "base_url", "http://api1.5sim.net/stubs/handler_api.php"),
    ("smsman", "base_url", "https://api.sms-man.com/stubs/handler_api.php"),
    ("tigersms", "base_url", "https://api.tiger-sms.com/stubs/handler_api.php"),
    ("smsbower", "base_url", "https://smsbower.online/stubs/handler_api.php"),
    ("365sms", "base_url", "https://365sms.ru/stubs/handler_api.php"),
    ("onlinesim", "base_url", "http://api-conserver.onlinesim.io/stubs/handler_api.php"),
])
def test_profile_quirks(name, field, value):
    assert getattr(get_dialect(name), field) == value


@pytest.mark.parametrize("name,v2,idempotent,max_price", [
    ("sms-activate", True, True, True),      # the reference: all three documented
    ("herosms", True, False, True),          # orderId idempotency uncertain
    ("grizzly", True, False, True),
    ("smshub", False, False, True),          # only getNumber; maxPrice with currency
    ("vaksms", False, False, False),
    ("5sim", False, False, False),
    ("smsman", False, False, False),
    ("tigersms", False, False, False),
    ("smsbower", False, False, False),
    ("365sms", False, False, False),
    ("onlinesim", False, False, False),
    ("generic", True, False, False),
])
def test_purchase_promises(name, v2, idempotent, max_price):
    d = get_dialect(name)
    assert (d.has_number_v2, d.idempotent_purchase, d.max_price_supported) == (v2, idempotent, max_price)
    assert d.purchase_action == ("getNumberV2" if v2 else "getNumber")


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


def test_inconsistent_profile_is_refused():
    with pytest.raises(ValueError, match="auth=form"):
        Dialect(name="x", base_url="http://x/", auth="form")
    with pytest.raises(ValueError, match="has_number_v2"):
        Dialect(name="x", base_url="http://x/", has_number_v2=False, idempotent_purchase=True)


# ------------------------------------------------------------------ overrides
def test_overridable_names_real_fields_and_not_identity():
    names = {f.name for f in dataclasses.fields(Dialect)}
    assert set(OVERRIDABLE) <= names
    assert not {"name", "aliases"} & set(OVERRIDABLE)
    assert {"cancel_status", "base_url", "method", "auth", "max_price_supported", "idempotent_purchase",
            "has_number_v2", "has_active_activations", "price_action", "default_currency"} <= set(OVERRIDABLE)


@pytest.mark.parametrize("field,text,value", [
    ("cancel_status", "-1", -1),
    ("cancel_status", " 10 ", 10),
    ("base_url", "https://mirror.example/stubs/handler_api.php", "https://mirror.example/stubs/handler_api.php"),
    ("url", "http://127.0.0.1:8099/stubs/handler_api.php", "http://127.0.0.1:8099/stubs/handler_api.php"),
    ("method", "post", "POST"),
    ("auth", "Header", "header"),
    ("max_price_supported", "false", False),
    ("has_active_activations", "0", False),
    ("set_status_accepts_204", "yes", True),
    ("title_errors", "ON", True),
    ("default_currency", "643", 643),
    ("default_currency", "none", None),
    ("price_action", "getPricesExtended", "getPricesExtended"),
    ("multi_forward_param", "forward", "forward"),
    ("rent_time_param", "time", "time"),
    ("incoming_call_id_param", "id", "id"),
    ("partner_product_param", "productId", "productId"),
    ("webhook_sources", "10.0.0.1, 192.168.0.0/24", ("10.0.0.1", "192.168.0.0/24")),
])
def test_override_applies(field, text, value):
    base = get_dialect("sms-activate")
    changed = apply_overrides(base, {field: text})
    target = "base_url" if field == "url" else field
    assert getattr(changed, target) == value
    assert changed.name == base.name and base == get_dialect("sms-activate"), "the profile itself is unchanged"


def test_override_keys_are_case_insensitive_and_several_apply_together():
    changed = apply_overrides(get_dialect("herosms"), {"CANCEL_STATUS": "-1", "Has_Rent": "false", "auth": "header"})
    assert (changed.cancel_status, changed.has_rent, changed.auth) == (-1, False, "header")
    assert apply_overrides(get_dialect("grizzly"), {}) is get_dialect("grizzly")


def test_overrides_reach_the_client():
    dialect = apply_overrides(get_dialect("sms-activate"), {"cancel_status": "-1", "has_active_activations": "no"})
    with ProviderClient("key-123456", dialect=dialect) as client:
        assert client.dialect.cancel_status == -1
        with pytest.raises(E.NotSupported):
            client.get_active_activations()


def test_post_with_form_key_is_a_valid_combination():
    changed = apply_overrides(get_dialect("generic"), {"method": "POST", "auth": "form"})
    assert (changed.method, changed.auth) == ("POST", "form")


@pytest.mark.parametrize("field,text", [
    ("cancel_status", "cancel"),
    ("cancel_status", "6"),
    ("cancel_status", "1.5"),
    ("base_url", "ftp://x/stubs/handler_api.php"),
    ("base_url", "not a url"),
    ("method", "PUT"),
    ("auth", "cookie"),
    ("max_price_supported", "maybe"),
    ("has_rent", ""),
    ("default_currency", "USD"),
    ("default_currency", "1000"),
    ("price_action", "getPricesV9"),
    ("multi_forward_param", "fwd"),
    ("webhook_sources", "10.0.0.1,not-an-ip"),
])
def test_bad_override_names_field_and_value(field, text):
    with pytest.raises(BadOverride) as info:
        apply_overrides(get_dialect("sms-activate"), {field: text})
    assert isinstance(info.value, ValueError)
    assert info.value.field == field and info.value.value == text
    assert field in str(info.value) and repr(text) in str(info.value)


def test_unknown_field_is_refused_naming_it():
    with pytest.raises(BadOverride) as info:
        apply_overrides(get_dialect("herosms"), {"CANCEL_STAUS": "8"})
    assert info.value.field == "CANCEL_STAUS" and "cancel_status" in str(info.value)
    with pytest.raises(BadOverride):
        apply_overrides(get_dialect("herosms"), {"name": "other"})


@pytest.mark.parametrize("profile,overrides,culprit", [
    ("sms-activate", {"auth": "form"}, "auth"),                       # GET has no body
    ("smshub", {"idempotent_purchase": "true"}, "idempotent_purchase"),   # no getNumberV2
    ("sms-activate", {"has_number_v2": "false"}, "has_number_v2"),   # still idempotent_purchase
])
def test_inconsistent_override_is_refused(profile, overrides, culprit):
    with pytest.raises(BadOverride) as info:
        apply_overrides(get_dialect(profile), overrides)
    assert info.value.field == culprit and info.value.value == overrides[culprit]


def test_consistent_pair_of_overrides_passes():
    changed = apply_overrides(get_dialect("sms-activate"), {"has_number_v2": "false", "idempotent_purchase": "0"})
    assert changed.purchase_action == "getNumber" and not changed.idempotent_purchase
