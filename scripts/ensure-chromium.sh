#!/usr/bin/env bash
# ensure-chromium.sh: installs Debian's chromium for the browser tests when it
# is missing (needs root, as on CI and the development machines).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "ensure-chromium: chromium is missing; install it with: sudo apt-get install -y chromium" >&2
	exit 1
fi
echo "ensure-chromium: installing Debian's chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium >/dev/null
