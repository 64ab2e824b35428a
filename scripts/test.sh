#!/usr/bin/env bash
# The test command: install, lint, type-check, run the whole suite (SeaweedFS starts itself).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh
ruff check mreg tests bench
ruff format --check mreg tests bench
mypy mreg
python3 -m pytest -q "$@"
