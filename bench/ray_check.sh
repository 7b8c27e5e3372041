#!/usr/bin/env bash
# ray_check.sh — the end-to-end check of python -m qrr.ray_rerank as a user meets it: with the
# python of an environment where `pip install "./python[ray]"` was run (no QRR_LIBRARY, no
# PYTHONPATH: the installed package and its own libqrr), rerank N pairs of JSON lines on a
# local Ray instance and compare every row with the build's `qrr score`: every id once, in
# order, |score difference| <= 1e-5.
#
#   PYTHON=/tmp/v/bin/python bench/ray_check.sh [N]      (default N 1600)
#   QRR_BUILD (default build), QRR_REFERENCE (default ../shared/reference)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PYTHON:?set PYTHON to the python of an environment with ./python[ray] installed}"
N=${1:-1600}
B=$(cd "${QRR_BUILD:-build}" && pwd)
REF=$(cd "${QRR_REFERENCE:-../shared/reference}" && pwd)
W=$(mktemp -d /tmp/qrr-ray-check.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir "$W/tiny"
ln -s "$REF"/models/tiny-tied/* "$REF"/tokenizer/* "$W/tiny/"
"$B/qconvert" "$W/tiny" -o "$W/tiny.qrr" --dtype f32 --quiet
QRR_REFERENCE=$REF python3 bench/ray_pairs.py "$N" $(((N + 99) / 100)) 8 40 3 > "$W/pairs.jsonl"
"$B/qrr" score "$W/tiny.qrr" --threads 1 < "$W/pairs.jsonl" > "$W/want.jsonl"
(cd "$W" && env -u QRR_LIBRARY -u QRR_QCONVERT -u PYTHONPATH "$PYTHON" -c \
  'import qrr, qrr._capi as c; print("qrr", qrr.__version__, "from", c.library_path())')
(cd "$W" && env -u QRR_LIBRARY -u QRR_QCONVERT -u PYTHONPATH \
  "$PYTHON" -m qrr.ray_rerank tiny.qrr pairs.jsonl scored.jsonl --actors 2 2> run.log) ||
  { tail -n 20 "$W/run.log"; exit 1; }
tail -n 1 "$W/run.log"
python3 - "$W/pairs.jsonl" "$W/scored.jsonl" "$W/want.jsonl" <<'EOF'
import json, sys
rows, got, want = ([json.loads(l) for l in open(p)] for p in sys.argv[1:4])
ids = [g["id"] for g in got]
assert ids == [r["id"] for r in rows], "ids differ from the input's"
assert len(set(ids)) == len(rows)
for g, r in zip(got, rows):
    assert {k: g[k] for k in r} == r, g["id"]
worst = max(abs(g["score"] - w["score"]) for g, w in zip(got, want))
worst_logit = max(abs(g["logit"] - w["logit"]) for g, w in zip(got, want))
assert worst <= 1e-5 and worst_logit <= 1e-5, (worst, worst_logit)
print(f"ray_check: {len(got)} rows, each id once and in order, every field kept; "
      f"max |score - qrr score| = {worst:.2g}, max |logit - qrr score's| = {worst_logit:.2g}")
EOF
