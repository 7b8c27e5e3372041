#!/usr/bin/env bash
# arm64_criterion.sh DIR — Criterion for the arm64 tests, unpacked into DIR (usr/include,
# usr/lib/aarch64-linux-gnu) from Debian's arm64 packages. Criterion's arm64 and amd64
# packages cannot be installed side by side (libnanomsg is not multi-arch), so the arm64 ones
# are downloaded with apt-get and unpacked here instead; the test binaries find the library
# through their run path. Needs the arm64 package lists (tools/install-deps.sh --arm64) and
# no root. Its other libraries (libgit2, libffi) are multi-arch and installed as usual.
set -euo pipefail
dir=${1:?usage: arm64_criterion.sh DIR}
debs=$(mktemp -d /tmp/qrr-arm64-debs.XXXXXX)
trap 'rm -rf "$debs"' EXIT
chmod 755 "$debs" # apt-get download runs as _apt where it can
if ! (cd "$debs" && apt-get download -q libcriterion3:arm64 libcriterion-dev:arm64 \
        libnanomsg5:arm64 > "$debs/log" 2>&1); then
  cat "$debs/log" >&2
  echo "arm64_criterion: could not download Criterion's arm64 packages;" \
       "run tools/install-deps.sh --arm64 (it adds the arm64 package lists)" >&2
  exit 1
fi
rm -rf "$dir"
mkdir -p "$dir"
for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$dir"; done
echo "arm64_criterion: $(ls "$debs"/*.deb | xargs -n1 basename | tr '\n' ' ')unpacked into $dir"
