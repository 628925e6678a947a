"""The README's configuration table against the declarations in config/settings.py, both ways."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from config.settings import ROLES, Declaration, declarations

README = Path(__file__).resolve().parents[2] / "README.md"


@dataclass(frozen=True)
class Row:
    env: str
    default: str
    roles: tuple[str, ...]


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def readme_rows() -> list[Row]:
    """One row per variable: a line naming two variables (`A` / `B`) gives each its part of the default."""
    lines = [line for line in _section(README.read_text(), "Configuration").splitlines() if line.startswith("|")]
    header = _cells(lines[0])
    assert header[:3] == ["variable", "default", "roles"], header
    rows: list[Row] = []
    for line in lines[2:]:
        variables, default, roles = _cells(line)[:3]
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", variables)
        assert names, line
        defaults = default.split(" / ") if len(names) > 1 and " / " in default else [default] * len(names)
        assert len(defaults) == len(names), line
        role_set = ROLES if roles == "all" else tuple(part.strip() for part in roles.split(","))
        rows += [Row(name, value.strip(), role_set) for name, value in zip(names, defaults)]
    return rows


def _shows_default(cell: str, declared: Declaration) -> bool:
    """The cell gives the declared default, optionally followed by a note in parentheses."""
    text = declared.default_text
    return cell == text or cell.startswith(text + " (")


def test_every_declared_setting_is_in_the_table_with_its_default_and_roles() -> None:
    rows = {row.env: row for row in readme_rows()}
    for declared in declarations():
        assert declared.env in rows, f"README's configuration table lacks {declared.env}"
        row = rows[declared.env]
        assert _shows_default(row.default, declared), (declared.env, row.default, declared.default_text)
        assert set(row.roles) == set(declared.setting.roles), (declared.env, row.roles, declared.setting.roles)


def test_the_table_names_only_declared_settings_each_once() -> None:
    names = [row.env for row in readme_rows()]
    assert len(names) == len(set(names))
    assert set(names) <= {d.env for d in declarations()}, set(names) - {d.env for d in declarations()}


def test_the_providers_section_names_every_provider_variable_and_profile() -> None:
    from config.providers import TEMPLATES
    from provider.dialects import dialect_names

    section = _section(README.read_text(), "Providers")
    for suffix in TEMPLATES:
        assert f"`PROVIDER_<N>_{suffix}`" in section, suffix
    for name in dialect_names():
        assert f"`{name}`" in section, name
