#!/usr/bin/env bash
# Installs the Debian packages the test-suite runs for real, when they are missing:
#   fonts (synthetic data), nginx and Prometheus (deployment topology test), Chromium (playground test),
#   wrk (the overload and soak benches, smoke-tested).
# Needs root (CI runs as root); without root it says what is missing and the tests that need it skip.
set -euo pipefail
want=()
command -v fc-list >/dev/null 2>&1 || want+=(fontconfig)
[ -d /usr/share/fonts/truetype/dejavu ] || want+=(fonts-dejavu-core)
[ -d /usr/share/fonts/truetype/liberation2 ] || want+=(fonts-liberation2)
[ -d /usr/share/fonts/truetype/freefont ] || want+=(fonts-freefont-ttf)
[ -d /usr/share/fonts/opentype/urw-base35 ] || [ -d /usr/share/fonts/type1/urw-base35 ] || want+=(fonts-urw-base35)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || want+=(nginx-light)
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || want+=(prometheus)
[ -x /usr/bin/chromium ] || want+=(chromium)
[ -x /usr/bin/chromedriver ] || want+=(chromium-driver)
command -v wrk >/dev/null 2>&1 || want+=(wrk)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: not root; missing Debian packages: ${want[*]} (tests that need them will skip)" >&2
  exit 0
fi
echo "system-deps: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
# Debian starts the services it installs; the tests run their own instances on loopback.
(service nginx stop || true) >/dev/null 2>&1
(service prometheus stop || pkill -x prometheus || true) >/dev/null 2>&1
