# Sourced by scripts/run, scripts/test and scripts/lint: make sure the venv ($OTPFLOW_VENV, default .venv) holds
# exactly the pinned packages of requirements-dev.txt (the deploy pins of requirements.txt at the same versions,
# plus the dev and local extras), then otpflow itself, editable and with --no-deps. Needs only Python 3.11+; every
# package is a wheel (nothing compiles). Runs pip again when requirements-dev.txt or pyproject.toml changes.
set -euo pipefail
find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3 python; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "otpflow needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  return 1
}
# pip, quiet, without this machine's notes about configured package folders that do not exist; its exit status kept.
venv_pip() {
  local log status=0
  log=$(mktemp)
  "$VENV/bin/python" -m pip --disable-pip-version-check --quiet "$@" >"$log" 2>&1 || status=$?
  grep -v "is ignored: it is neither a file nor a directory" "$log" >&2 || true
  rm -f "$log"
  return "$status"
}
VENV="${OTPFLOW_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  PY=$(find_python)
  echo "Creating $VENV with $PY ..." >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.otpflow-installed"
want=$(cat requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing the pinned dependencies (requirements-dev.txt) and otpflow into $VENV ..." >&2
  venv_pip install -r requirements-dev.txt || { echo "installing requirements-dev.txt failed" >&2; exit 1; }
  # What the lock no longer lists (a dependency that was dropped) leaves the venv, so nothing works by accident.
  extra=$("$VENV/bin/python" - <<'PY'
import importlib.metadata as md, re
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
locked = {norm(line.split("==")[0]) for line in open("requirements-dev.txt") if "==" in line and not line[0].isspace()}
keep = locked | {"pip", "setuptools", "wheel", "otpflow"}
print(" ".join(sorted({norm(d.metadata["Name"]) for d in md.distributions() if d.metadata["Name"]} - keep)))
PY
)
  if [ -n "$extra" ]; then
    echo "Removing packages requirements-dev.txt does not list: $extra" >&2
    # shellcheck disable=SC2086 # one word per package
    venv_pip uninstall --yes $extra
  fi
  venv_pip install --no-deps -e . || { echo "installing otpflow failed" >&2; exit 1; }
  venv_pip check || { echo "the installed packages do not fit together (pip check above)" >&2; exit 1; }
  "$VENV/bin/python" -c 'import otpflow, celery, flask' || { echo "installation failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
