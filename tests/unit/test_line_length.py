"""No line of the repository's code is longer than 120 characters, so the tree reads the same in any editor and
in a side-by-side diff. A check of our own: the fixed stack has no formatter or linter to carry the setting, and
one test is cheaper than a new development dependency."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINE = 120
#: where code lives (the virtual environments and build output beside them are not ours)
CODE = ("provider", "sandbox", "lifecycle", "config", "telemetry", "flows", "tasks", "worker", "webhook", "otpflow",
        "tests", "bench", "examples")
SHELL = ("scripts/lint", "scripts/run", "scripts/test", "scripts/without-compiler", "scripts/_venv.sh", ".ci/run")


def too_long(paths: list[Path], root: Path = ROOT) -> list[str]:
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if len(line) > MAX_LINE:
                found.append(f"{path.relative_to(root)}:{number}: {len(line)} characters")
    return found


def test_no_line_of_code_is_longer_than_120_characters() -> None:
    python = sorted(p for top in CODE for p in (ROOT / top).rglob("*.py"))
    shell = [ROOT / name for name in SHELL if (ROOT / name).is_file()]
    assert len(python) > 100
    assert too_long(python + shell) == []


def test_the_check_sees_a_long_line(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n" + "y" * 120 + "\n" + "z" * 121 + "\n", encoding="utf-8")
    assert too_long([tmp_path / "a.py"], root=tmp_path) == ["a.py:3: 121 characters"]
