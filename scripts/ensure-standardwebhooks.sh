#!/usr/bin/env bash
# ensure-standardwebhooks.sh: installs the Standard Webhooks reference
# library pinned in tools/standardwebhooks (npm ci: the lockfile, integrity
# checked) once, into tools/standardwebhooks/node_modules, for the tests
# that check the key service's webhook signatures with it (they skip
# without it, and fail under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=tools/standardwebhooks
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
	if [ "${CI:-}" = "true" ]; then
		echo "standardwebhooks: node and npm are needed (install Node.js and npm)" >&2
		exit 1
	fi
	echo "standardwebhooks: node or npm is missing; the webhook signature tests will skip" >&2
	exit 0
fi
if [ ! -d "$dir/node_modules/standardwebhooks" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
	echo "standardwebhooks: installing the pinned standardwebhooks package into $dir" >&2
	npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
fi
