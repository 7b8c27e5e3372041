#!/usr/bin/env bash
# run.sh — run every Criterion test binary given, print each one's synthesis and a closing
# total "N passed, N failed" (over tests, not binaries); exit 1 if any test failed.
set -uo pipefail
passed=0; failed=0; bad_bins=()
for t in "$@"; do
  echo "== $t"
  out=$("$t" --jobs=2 2>&1); rc=$?
  printf '%s\n' "$out" | grep -vE '^\[(RUN |PASS)\]' | tail -n 40
  line=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -n 1)
  p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$line"); p=${p:-0}
  f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$line"); f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # a binary that died before its synthesis
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -eq 0 ] || bad_bins+=("$(basename "$t")")
done
[ ${#bad_bins[@]} -eq 0 ] || echo "failing: ${bad_bins[*]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
