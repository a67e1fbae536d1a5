#!/usr/bin/env bash
# Install everything needed (idempotent, cached), then run lint, type checks and the full test suite.
# Extra arguments go to pytest (e.g. `deploy/test.sh -m "not slow"`). Exits non-zero on any failure,
# including when no test was collected (pytest exit code 5).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/deploy/install.sh"
cd "$ROOT"
VENV=${AGRI_VENV:-$ROOT/.venv}
echo "[test] ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check . >/dev/null || { "$VENV/bin/ruff" format --check .; exit 1; }
echo "[test] mypy"
"$VENV/bin/mypy"
echo "[test] pytest"
exec "$VENV/bin/pytest" "$@"
