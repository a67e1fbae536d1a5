#!/usr/bin/env bash
# Install everything needed (idempotent, cached), then run the platform with simulated farms in the
# foreground. Ctrl-C stops everything it started.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/deploy/install.sh"
exec "${AGRI_VENV:-$ROOT/.venv}/bin/agri" demo "$@"
