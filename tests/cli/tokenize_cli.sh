#!/usr/bin/env bash
# `wattwise tokenize` from the command line: input formats, output order, truncation, errors,
# exit codes (1: error, 2: usage), and that nothing is written when it fails.
# Usage: tokenize_cli.sh <wattwise> <source-dir> <shared-data-dir>
set -uo pipefail
ww="$1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# A small vocabulary: id = line number - 1.
mkdir "$tmp/tok"
printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' hello world , '!' the cat sat on mat \
  > "$tmp/tok/vocab.txt"
id() { grep -nxF -- "$1" "$tmp/tok/vocab.txt" | cut -d: -f1 | awk '{print $1 - 1}'; }
ids() { local out="" t; for t in "$@"; do out="$out${out:+,}$(id "$t")"; done; echo "$out"; }
CLS=$(id '[CLS]'); SEP=$(id '[SEP]'); UNK=$(id '[UNK]')

# expect_line FILE N CONTENT
expect_line() {
  local got
  got="$(sed -n "${2}p" "$1")"
  [ "$got" = "$3" ] || fail "$1 line $2: expected $3, got $got"
}

# --- plain text: one output line per input line, empty lines included, in order
printf 'Hello, world!\n\nthe cat sat on the mat\nzebra\n' > "$tmp/in.txt"
if ! "$ww" tokenize --tokenizer "$tmp/tok" --input "$tmp/in.txt" --output "$tmp/out.jsonl" > "$tmp/stdout"; then
  fail "plain text run failed"
fi
[ "$(wc -l < "$tmp/out.jsonl")" -eq 4 ] || fail "plain text: expected 4 output lines"
expect_line "$tmp/out.jsonl" 1 "{\"input_ids\":[$(ids '[CLS]' hello , world '!' '[SEP]')]}"
expect_line "$tmp/out.jsonl" 2 "{\"input_ids\":[$CLS,$SEP]}"
expect_line "$tmp/out.jsonl" 3 "{\"input_ids\":[$(ids '[CLS]' the cat sat on the mat '[SEP]')]}"
expect_line "$tmp/out.jsonl" 4 "{\"input_ids\":[$CLS,$UNK,$SEP]}"
grep -q "tokenized 4 examples" "$tmp/stdout" || fail "summary line missing: $(cat "$tmp/stdout")"

# --- JSON Lines with pairs: token_type_ids only for pairs
printf '%s\n' '{"text": "the cat", "text_pair": "sat"}' '{"text": "hello"}' > "$tmp/in.jsonl"
"$ww" tokenize --tokenizer "$tmp/tok" --input "$tmp/in.jsonl" --output "$tmp/pairs.jsonl" > /dev/null \
  || fail "jsonl run failed"
expect_line "$tmp/pairs.jsonl" 1 "{\"input_ids\":[$(ids '[CLS]' the cat '[SEP]' sat '[SEP]')],\"token_type_ids\":[0,0,0,0,1,1]}"
expect_line "$tmp/pairs.jsonl" 2 "{\"input_ids\":[$(ids '[CLS]' hello '[SEP]')]}"

# --- GLUE TSV pairs and --max-length (longest_first: the longer text loses ids first)
printf 'index\tsentence1\tsentence2\tlabel\n0\tthe cat sat on the mat\thello\t1\n' > "$tmp/in.tsv"
"$ww" tokenize --tokenizer "$tmp/tok" --input "$tmp/in.tsv" --output "$tmp/tsv.jsonl" --max-length 6 \
  > "$tmp/stdout" || fail "tsv run failed"
expect_line "$tmp/tsv.jsonl" 1 "{\"input_ids\":[$(ids '[CLS]' the cat '[SEP]' hello '[SEP]')],\"token_type_ids\":[0,0,0,0,1,1]}"
grep -q "1 truncated" "$tmp/stdout" || fail "truncation not reported: $(cat "$tmp/stdout")"

# --- errors: exit code, message naming the problem, no output written
# expect_error CODE PATTERN OUTPUT-FILE ARGS...
expect_error() {
  local code="$1" pattern="$2" out="$3"
  shift 3
  "$ww" tokenize "$@" > "$tmp/stdout" 2> "$tmp/stderr"
  local rc=$?
  [ "$rc" -eq "$code" ] || fail "$* exited $rc, expected $code ($(cat "$tmp/stderr"))"
  grep -qF -- "$pattern" "$tmp/stderr" || fail "$*: stderr lacks '$pattern': $(cat "$tmp/stderr")"
  [ ! -e "$out" ] || fail "$*: $out was written although the command failed"
}
printf 'fine\nnot \xff utf8\n' > "$tmp/bad_utf8.txt"
expect_error 1 "bad_utf8.txt:2: invalid UTF-8" "$tmp/o1" --tokenizer "$tmp/tok" --input "$tmp/bad_utf8.txt" --output "$tmp/o1"
printf '{"text": "ok"}\n{"text": \n' > "$tmp/bad.jsonl"
expect_error 1 "bad.jsonl:2: invalid JSON" "$tmp/o2" --tokenizer "$tmp/tok" --input "$tmp/bad.jsonl" --output "$tmp/o2"
printf '{"txt": "ok"}\n' > "$tmp/nofield.jsonl"
expect_error 1 'nofield.jsonl:1: missing "text"' "$tmp/o3" --tokenizer "$tmp/tok" --input "$tmp/nofield.jsonl" --output "$tmp/o3"
printf 'premise\thypothesis\na\tb\n' > "$tmp/nocol.tsv"
expect_error 1 "nocol.tsv:1: the header names no text column" "$tmp/o4" --tokenizer "$tmp/tok" --input "$tmp/nocol.tsv" --output "$tmp/o4"
expect_error 1 "missing.txt" "$tmp/o5" --tokenizer "$tmp/tok" --input "$tmp/missing.txt" --output "$tmp/o5"
expect_error 1 "does not exist" "$tmp/o6" --tokenizer "$tmp/no-such-tokenizer" --input "$tmp/in.txt" --output "$tmp/o6"
printf 'x\n' > "$tmp/badvocab.txt"
expect_error 1 "badvocab.txt" "$tmp/o7" --tokenizer "$tmp/badvocab.txt" --input "$tmp/in.txt" --output "$tmp/o7"
expect_error 1 "in.jsonl:1: max_length 2" "$tmp/o8" --tokenizer "$tmp/tok" --input "$tmp/in.jsonl" --output "$tmp/o8" --max-length 2
expect_error 1 "cannot write" "$tmp/no-such-dir/out" --tokenizer "$tmp/tok" --input "$tmp/in.txt" --output "$tmp/no-such-dir/out"
expect_error 2 "--output" "$tmp/o9" --tokenizer "$tmp/tok" --input "$tmp/in.txt"
expect_error 2 "max-length" "$tmp/o10" --tokenizer "$tmp/tok" --input "$tmp/in.txt" --output "$tmp/o10" --max-length -1

# --output that is the --input (same path, or a link to it) is refused; the input is untouched.
cp "$tmp/in.txt" "$tmp/same.txt"
ln -s "$tmp/same.txt" "$tmp/same_link.jsonl"
for out in "$tmp/same.txt" "$tmp/same_link.jsonl"; do
  "$ww" tokenize --tokenizer "$tmp/tok" --input "$tmp/same.txt" --output "$out" 2> "$tmp/err"
  rc=$?
  [ $rc -eq 1 ] && grep -q -- "--output .* is the --input file" "$tmp/err" && cmp -s "$tmp/same.txt" "$tmp/in.txt" ||
    fail "--output $out (the input): exit $rc, $(cat "$tmp/err")"
done

# A failed run leaves an existing output file untouched and no temporary files behind.
cp "$tmp/out.jsonl" "$tmp/keep.jsonl"
"$ww" tokenize --tokenizer "$tmp/tok" --input "$tmp/bad.jsonl" --output "$tmp/keep.jsonl" 2> /dev/null \
  && fail "bad input did not fail"
cmp -s "$tmp/out.jsonl" "$tmp/keep.jsonl" || fail "existing output changed by a failed run"
leftovers="$(find "$tmp" -name '.*.tmp.*')"
[ -z "$leftovers" ] || fail "temporary files left behind: $leftovers"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "tokenize CLI: all checks passed"
