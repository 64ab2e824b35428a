#!/usr/bin/env bash
# The main job on the embedded default: install, walk through mreg with a local remote and the
# bundled data (examples/data), then train ResNet18 on versioned data end to end
# (`mreg demo train --offline`: scikit-learn's digits, a fresh model, a local remote). Offline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh
bash examples/walkthrough.sh

work="$(mktemp -d -t mreg-train-XXXXXX)"
export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-mreg demo}" GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-demo@mreg.invalid}"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
printf '\n\033[1m== train ResNet18 on a versioned data set, register it with its lineage\033[0m\n'
mkdir -p "$work/project" && cd "$work/project"
git init -q -b main
mreg init
mreg remote add origin "$work/remote" --default
mreg demo train --offline --steps "${MREG_DEMO_STEPS:-30}" --batch 64 --cache "$work/downloads"
mreg log digits-resnet18
mreg log digits-train
printf '\nDone. The training run is under %s\n' "$work"
