#!/usr/bin/env bash
# Installs the Debian packages the test-suite runs for real, when they are missing.
# Needs root (CI runs as root); without root it says what is missing and the tests that need it skip.
set -euo pipefail
want=()
command -v fc-list >/dev/null 2>&1 || want+=(fontconfig)
[ -d /usr/share/fonts/truetype/dejavu ] || want+=(fonts-dejavu-core)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: not root; missing Debian packages: ${want[*]} (tests that need them will skip)" >&2
  exit 0
fi
echo "system-deps: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
