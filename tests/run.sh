#!/usr/bin/env bash
# run.sh — run every Criterion test binary given, then (when QRR_PYTEST is set) the Python
# package's pytest suite against this build's libqrr; print each one's synthesis and a
# closing total "N passed, N failed" (over tests, not binaries); exit 1 if any test failed.
# QRR_PYTEST=sanitized says the build's libqrr cannot load into python, QRR_PYTEST=off that
# the caller runs them elsewhere (make test PYTEST=0): one line, no tests.
# Without the reference data (QRR_REFERENCE) it says so once and runs nothing (exit 2).
# Each reference model the tests convert as a fixture is converted once per run, into a
# directory removed at the end (QRR_TEST_MODEL_CACHE, unless the caller names one): most of
# the suite's time went to converting the same three tiny models again in every test.
set -uo pipefail
ref=${QRR_REFERENCE:-../shared/reference}  # the tests' own default, from the repository root
if [ ! -d "$ref" ]; then
  echo "reference data not found at $ref: set QRR_REFERENCE to the reference folder" >&2
  exit 2
fi
if [ -z "${QRR_TEST_MODEL_CACHE:-}" ]; then
  QRR_TEST_MODEL_CACHE=$(mktemp -d /tmp/qrr-test-models.XXXXXX) || exit 2
  trap 'rm -rf "$QRR_TEST_MODEL_CACHE"' EXIT
  export QRR_TEST_MODEL_CACHE
fi
passed=0; failed=0; bad_bins=()
for t in "$@"; do
  echo "== $t"
  t0=$SECONDS
  out=$("$t" --jobs=2 2>&1); rc=$?
  printf '%s\n' "$out" | grep -vE '^\[(RUN |PASS)\]' | tail -n 40
  echo "-- $(basename "$t"): $((SECONDS - t0)) s"
  line=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -n 1)
  p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$line"); p=${p:-0}
  f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$line"); f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # a binary that died before its synthesis
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -eq 0 ] || bad_bins+=("$(basename "$t")")
done
if [ -n "${QRR_PYTEST:-}" ]; then
  echo "== python/tests (pytest)"
  if [ "$QRR_PYTEST" = sanitized ]; then
    echo "python: skipped (a sanitizer build's libqrr cannot be loaded into python)"
  elif [ "$QRR_PYTEST" = off ]; then
    echo "python: not run here (PYTEST=0)"
  elif ! python3 -c 'import pytest, numpy' 2>/dev/null; then
    echo "python: skipped (pytest or numpy not installed: python3 -m pip install pytest numpy)"
  else
    out=$(QRR_LIBRARY="$QRR_BUILD/libqrr.so" QRR_QCONVERT="$QRR_BUILD/qconvert" \
          PYTHONPATH="$PWD/python" python3 -m pytest -q -rfEs -p no:cacheprovider python/tests 2>&1); rc=$?
    printf '%s\n' "$out" | tail -n 40
    line=$(printf '%s\n' "$out" | tail -n 1)
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | awk '{s += $1} END {print s + 0}')
    f=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$line" | awk '{s += $1} END {print s + 0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    [ "$f" -eq 0 ] || bad_bins+=("python/tests")
  fi
fi
[ ${#bad_bins[@]} -eq 0 ] || echo "failing: ${bad_bins[*]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
