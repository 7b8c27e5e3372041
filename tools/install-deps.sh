#!/usr/bin/env bash
# install-deps.sh — install the Debian 12 packages qrr builds and tests with (needs root or
# sudo), python3's venv and pip among them when python3 lacks them. Installs only what is
# missing, so it is quick on a prepared machine.
set -euo pipefail
pkgs=(build-essential pkg-config zlib1g-dev libxxhash-dev libutf8proc-dev libpcre2-dev
      libjansson-dev libcriterion-dev libmicrohttpd-dev libcurl4-openssl-dev
      iproute2)  # iproute2: the two-node Ray test's network namespaces (ip netns)
# The Python package's build and tests need python3 with venv and pip.
python3 -c 'import venv, ensurepip' 2>/dev/null || pkgs+=(python3 python3-venv python3-pip)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
