#!/usr/bin/env bash
# ensure-axe.sh: installs the axe-core pinned in tools/axe-core (lockfile,
# integrity checked, from the npm registry) once, into
# tools/axe-core/node_modules, for the console's browser tests, which
# inject it into every page they walk and fail on a serious or critical
# violation. Later runs skip the install.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=tools/axe-core
js=$dir/node_modules/axe-core/axe.min.js
if [ -f "$js" ] && [ ! "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
	exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
	if [ "${CI:-}" = "true" ]; then
		echo "ensure-axe: npm is missing (install Node.js and npm)" >&2
		exit 1
	fi
	echo "ensure-axe: npm is missing; the browser tests will fail their accessibility check" >&2
	exit 0
fi
echo "ensure-axe: installing the pinned axe-core into $dir" >&2
npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
