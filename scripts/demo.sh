#!/usr/bin/env bash
# The main job on the embedded default: install, then walk through mreg with a local remote
# and the bundled data (examples/data), offline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh
bash examples/walkthrough.sh
