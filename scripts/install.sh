#!/usr/bin/env bash
# Install mreg and what its tests need into the current Python environment.
# torch==2.13.0 comes first: it is the CPU wheel these machines carry; any looser spec would
# pull the newest release plus gigabytes of CUDA wheels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# MREG_TORCH_INDEX=https://download.pytorch.org/whl/cpu: PyPI's torch==2.13.0 is the CUDA build.
python3 -m pip install --quiet --disable-pip-version-check "torch==2.13.0" \
    ${MREG_TORCH_INDEX:+--index-url "$MREG_TORCH_INDEX"}
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# Azurite (Azure Blob emulator) for tests/test_remote_kinds.py, where node and npm exist.
if [ ! -x /opt/azurite/node_modules/.bin/azurite-blob ] && command -v npm >/dev/null; then
    npm install --silent --prefix /opt/azurite azurite
fi
