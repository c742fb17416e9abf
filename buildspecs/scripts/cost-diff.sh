#!/usr/bin/env bash
# A pull request's change to a stack's monthly cost, as the Markdown section of its comment:
#   bash buildspecs/scripts/cost-diff.sh STACK BASE_BRANCH OUT [BASE_DIR]
# Runs the offline plan (no AWS calls) of this checkout and of the base: BASE_DIR when given (a
# checkout of the base branch), else BASE_BRANCH's tip fetched into a worktree beside this one; then
# compares their estimates (python -m cost.diff). Never fails the preview: what it could not do is
# the section's text.
set -uo pipefail
stack="${1:?usage: cost-diff.sh STACK BASE_BRANCH OUT}"
base_branch="${2:?usage: cost-diff.sh STACK BASE_BRANCH OUT}"
out="${3:?usage: cost-diff.sh STACK BASE_BRANCH OUT}"
: > "$out"  # a rerun starts afresh
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python="${PYTHON:-$PWD/venv/bin/python}"  # make plan creates it
if ! make --no-print-directory plan STACK="$stack" ARGS="--json $work/head.json" > "$work/head.log" 2>&1; then
  [[ -s "$work/head.json" ]] \
    || echo "**Monthly cost of stack $stack**: no estimate (the offline plan did not run: $(tail -n 1 "$work/head.log"))" > "$out"
fi
base="${4:-}"
if [[ -z "$base" ]]; then
  if git fetch --quiet --depth 1 origin "refs/heads/$base_branch" > "$work/fetch.log" 2>&1 \
      && git worktree add --quiet --detach "$work/base" FETCH_HEAD >> "$work/fetch.log" 2>&1; then
    base="$work/base"
  else
    fetched="cannot fetch $base_branch: $(tail -n 1 "$work/fetch.log")"
  fi
fi
if [[ -n "$base" ]]; then
  # The base runs with this checkout's interpreter and SDKs (its own pins may differ: said below).
  (cd "$base" && "$python" -m offline.plan --stack "$stack" --json "$work/base.json") > "$work/base.log" 2>&1
  cmp -s "$base/requirements.txt" requirements.txt || differ=1
  [[ "$base" != "$work/base" ]] || git worktree remove --force "$work/base" > /dev/null 2>&1
fi
[[ -s "$out" ]] || "$python" -m cost.diff --stack "$stack" --base "$work/base.json" --head "$work/head.json" > "$out"
[[ -z "${fetched:-}" ]] || echo "The base: $fetched" >> "$out"
[[ -z "${differ:-}" ]] || echo "The base's requirements.txt differs from this pull request's: its plan ran with these SDKs." >> "$out"
exit 0
