#!/usr/bin/env bash
# install-deps.sh — install the Debian 12 packages qrr builds and tests with (needs root or
# sudo), python3's venv and pip among them when python3 lacks them. Installs only what is
# missing, so it is quick on a prepared machine.
#   --arm64   also what `make cross-arm64` and `make test-arm64` need: the aarch64 cross
#             compiler, qemu-user, and the arm64 -dev packages through multiarch (it adds the
#             arm64 architecture to dpkg). Never removes a package: Criterion's arm64 build,
#             which would replace the amd64 one, is unpacked by tools/arm64_criterion.sh.
set -euo pipefail
arm64=0
for a in "$@"; do
  case $a in
    --arm64) arm64=1 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps: unknown option $a (options: --arm64, --help)" >&2; exit 2 ;;
  esac
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
pkgs=(build-essential pkg-config zlib1g-dev libxxhash-dev libutf8proc-dev libpcre2-dev
      libjansson-dev libcriterion-dev libmicrohttpd-dev libcurl4-openssl-dev
      iproute2)  # iproute2: the two-node Ray test's network namespaces (ip netns)
# The Python package's build and tests need python3 with venv and pip.
python3 -c 'import venv, ensurepip' 2>/dev/null || pkgs+=(python3 python3-venv python3-pip)
# A package without ":arch" counts when installed for the machine's own architecture (or
# for all): another architecture's package of the same name (multiarch) does not count.
arch=$(dpkg --print-architecture)
updated=0
if [ $arm64 -eq 1 ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "install-deps: adding the arm64 architecture to dpkg"
    $sudo dpkg --add-architecture arm64
    $sudo apt-get update -qq
    updated=1
  fi
  # Criterion's own libraries that are multi-arch (its arm64 library is unpacked apart).
  pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user zlib1g-dev:arm64
         libxxhash-dev:arm64 libutf8proc-dev:arm64 libpcre2-dev:arm64 libjansson-dev:arm64
         libmicrohttpd-dev:arm64 libcurl4-openssl-dev:arm64 libgit2-1.5:arm64 libffi8:arm64)
fi
missing=()
for p in "${pkgs[@]}"; do
  want="($arch|all)"
  [[ $p == *:* ]] && want=${p#*:}
  dpkg-query -W -f='${Status} ${Architecture}\n' "${p%%:*}" 2>/dev/null |
    grep -Eq "^install ok installed $want\$" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
[ $updated -eq 1 ] || $sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends --no-remove \
  "${missing[@]}"
