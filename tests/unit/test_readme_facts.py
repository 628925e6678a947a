"""Facts the README states that the code must keep true: the Redis databases the tests use (and that the
benchmarks stay out of), and the reason strings the downstream event table promises.

(The configuration table, the command table and the exit codes have tests of their own: test_readme_config.py,
test_cli_exit_codes.py.)
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PRODUCT = ("config", "flows", "lifecycle", "provider", "tasks", "webhook", "worker", "otpflow", "telemetry")


def _test_database_range() -> range:
    found = re.search(r"Tests use\s+databases (\d+)–(\d+)", README)
    assert found, "the README no longer says which databases the tests use"
    return range(int(found.group(1)), int(found.group(2)) + 1)


def test_tests_use_only_the_databases_the_readme_names() -> None:
    allowed = _test_database_range()
    used: dict[str, set[int]] = {}
    for path in (ROOT / "tests").rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r"redis_server_url\}/(\d+)", text):
            used.setdefault(str(path.relative_to(ROOT)), set()).add(int(match.group(1)))
        for match in re.finditer(r'OTPFLOW_TEST_REDIS_DB", "(\d+)"', text):
            used.setdefault(str(path.relative_to(ROOT)), set()).add(int(match.group(1)))
    assert used, "no test names a database: the scan is broken"
    outside = {path: sorted(dbs - set(allowed)) for path, dbs in used.items() if dbs - set(allowed)}
    assert not outside, f"tests use databases outside {allowed.start}–{allowed.stop - 1}: {outside}"


def test_benchmarks_stay_out_of_the_test_databases() -> None:
    allowed = _test_database_range()
    for path in (ROOT / "bench").glob("*.py"):
        for match in re.finditer(r"^REDIS_DB = (\d+)", path.read_text(), re.MULTILINE):
            assert int(match.group(1)) not in allowed, f"bench/{path.name} defaults to a test database"


def _event_table() -> str:
    start = README.index("## Downstream event contract")
    return README[start:README.index("```", start)]


def test_every_reason_the_event_table_names_is_one_the_code_emits() -> None:
    table = _event_table()
    reasons: set[str] = set()
    for cell in re.findall(r"`reason`[^|]*", table):
        reasons.update(re.findall(r"`([a-z_]+)(?::<[a-z]+>)?`", cell))
    reasons -= {"reason", "kind", "rent", "true", "false", "replaced", "refunded"}
    assert {"no_numbers", "timeout", "provider_closed", "free_cancellation_expired"} <= reasons, reasons
    code = "\n".join(p.read_text() for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py"))
    code += "\n".join(p.read_text() for p in (ROOT / "lifecycle").rglob("*.lua"))
    # a reason is a string literal, or the label an error class derives from its provider code (BAD_SERVICE)
    missing = sorted(r for r in reasons
                     if not any(f"{q}{form}" in code for q in "\"'" for form in (r, r.upper())))
    assert not missing, f"the README's event table names reasons no code emits: {missing}"
