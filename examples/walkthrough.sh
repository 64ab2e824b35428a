#!/usr/bin/env bash
# The mreg walk-through: a model and a dataset under version control, shared through a local
# remote, cloned, pulled, appended to, tagged, rolled back and diffed. Runs anywhere, offline.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="${MREG_DEMO_DIR:-$(mktemp -d -t mreg-demo-XXXXXX)}"
export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-mreg demo}" GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-demo@mreg.invalid}"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "a git repository with mreg, and a local-directory remote"
mkdir -p "$work/project" && cd "$work/project"
run git init -q -b main
run mreg init
run mreg remote add origin "$work/remote" --default

step "track a model (PyTorch state dict) and a dataset (CSV)"
python - <<'PY'
import torch
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
torch.save(net.state_dict(), "classifier.pth")
PY
cp "$here/data/flowers.csv" flowers.csv
run mreg add classifier.pth --meta task=flower-species
run mreg add flowers.csv --meta source=examples/data
run mreg ls
run git add -A && run git commit -q -m "Track classifier and flowers"
run mreg tag flowers v1.0.0 -m "150 measured flowers"
run mreg tag classifier v1.0.0
run mreg push

step "a teammate clones the repository and pulls the data"
cd "$work" && run git clone -q project teammate && cd teammate
run mreg status
run mreg pull
run mreg status
python -c "import mreg; print('rows in flowers:', mreg.open('flowers').count_rows())"

step "the teammate appends new measurements and retrains the head"
python - <<'PY'
import csv
rows = [[151 + i, "setosa", 5.1, 3.5, 1.4, 0.2] for i in range(10)]
with open("new-flowers.csv", "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["sample_id", "species", "sepal_length", "sepal_width", "petal_length", "petal_width"])
    writer.writerows(rows)
import torch
state = torch.load("classifier.pth", weights_only=True)
state["2.weight"] += 0.01
torch.save(state, "classifier.pth")
PY
run mreg add new-flowers.csv --name flowers --mode append
run mreg add classifier.pth
run mreg diff
run git add flowers.csv.mreg.toml classifier.pth.mreg.toml && run git commit -q -m "More flowers; retrained head"
run mreg tag flowers v1.1.0
run mreg tag classifier v1.1.0
run mreg push
run mreg log flowers

step "roll the dataset back to v1.0.0, and review the change between versions"
run mreg checkout flowers@v1.0.0
python -c "import mreg; print('rows after rollback:', mreg.open('flowers').count_rows())"
run mreg diff flowers@v1.0.0 flowers@v1.1.0
run mreg verify

printf '\nDone. Everything is under %s\n' "$work"
