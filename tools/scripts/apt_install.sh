#!/usr/bin/env bash
# Installs those of the named Debian packages that are not installed yet (one apt-get call; sudo when not root).
# Usage: tools/scripts/apt_install.sh PACKAGE...
#   @clang stands for clang and its sanitizer + libFuzzer runtimes (what the fuzz and sanitizer builds need).
set -euo pipefail
wanted=()
for p in "$@"; do
  if [ "$p" = @clang ]; then wanted+=(clang libclang-rt-14-dev); else wanted+=("$p"); fi
done
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
echo "installing ${missing[*]} (apt-get)" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
