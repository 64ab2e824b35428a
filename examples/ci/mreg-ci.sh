#!/bin/sh
# mreg in CI: pull only what the job needs, gate on data missing from the remote, check that
# tagged models can be reproduced, and write (optionally post) the review comment.
#
#   MREG_CI_BASE     the revision the change is compared with (default origin/main)
#   MREG_CI_REMOTE   the mreg remote (default: the repository's default remote)
#   MREG_CI_TARGETS  the artifacts the job needs, space-separated (default: all)
#   MREG_CI_COMMENT  where the markdown comment goes (default mreg-diff.md)
#   MREG_CI_PR       a pull request number: post the comment there with `gh` (needs GH_TOKEN)
#
# Runs anywhere mreg and git are installed; nothing here needs GitHub but the last step.
set -eu

base=${MREG_CI_BASE:-origin/main}
comment=${MREG_CI_COMMENT:-mreg-diff.md}
remote_option=""
if [ -n "${MREG_CI_REMOTE:-}" ]; then remote_option="--remote $MREG_CI_REMOTE"; fi

# 1. Only what the job needs comes down; the rest stays on the remote (the cache folder
#    .mreg/cache is restored between runs by the CI's cache step).
# shellcheck disable=SC2086  # word splitting of the target list and the option is wanted
mreg pull $remote_option ${MREG_CI_TARGETS:-}

# 2. The gate: every file those manifests reference is on the remote, whole (a teammate who
#    committed manifests but forgot `mreg push` fails here, naming the files).
default_remote=${MREG_CI_REMOTE:-$(mreg config --json | python3 -c \
    'import json,sys; print(next((s["value"] for s in json.load(sys.stdin) if s["key"] == "core.remote"), ""))')}
if [ -z "$default_remote" ]; then echo "mreg-ci: no default mreg remote" >&2; exit 1; fi
# shellcheck disable=SC2086
mreg verify --remote "$default_remote" ${MREG_CI_TARGETS:-}

# 3. Every model version tagged on this commit names a code commit and data the remote holds.
for tag in $(git tag --points-at HEAD | grep '@v' || true); do
    # shellcheck disable=SC2086
    mreg reproduce "$tag" --check $remote_option
done

# 4. The review comment.
if git rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
    mreg diff "$base" HEAD --format markdown > "$comment"
    echo "mreg-ci: review comment in $comment"
    if [ -n "${MREG_CI_PR:-}" ]; then gh pr comment "$MREG_CI_PR" --body-file "$comment"; fi
fi
