#!/usr/bin/env bash
# System packages the test suite needs (Debian/Ubuntu): PostgreSQL, Chromium + ChromeDriver, Prometheus/promtool,
# docker-compose (compose file validation), Node.js/npm (Grafana dashboard type check), Redis (the shared
# rate-limit store). Idempotent: installs only what is missing, so a second run costs a few milliseconds. Needs
# root, or sudo for apt-get.
# `make test` runs it; `make up` does not (running Sprout needs none of these).
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -x /usr/local/bin/initdb ]
}

missing=()
if ! have_postgres || ! id postgres >/dev/null 2>&1; then missing+=(postgresql); fi
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then missing+=(chromium chromium-driver); fi
if [ ! -x /usr/bin/promtool ] || [ ! -x /usr/bin/prometheus ]; then missing+=(prometheus); fi
if ! command -v docker-compose >/dev/null 2>&1; then missing+=(docker-compose); fi
if ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
if ! command -v redis-server >/dev/null 2>&1; then missing+=(redis-server); fi
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${missing[*]} (install them; this script knows only Debian/Ubuntu's apt-get)" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "installing ${missing[*]} needs root or sudo" >&2; exit 1; }
  SUDO=(sudo)
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
