#!/usr/bin/env bash
# lint-api.sh: lints api/openapi.yaml with the Redocly CLI pinned in
# tools/redocly (its recommended rules). Any error or warning fails. The CLI
# is installed from the npm registry with `npm ci` (lockfile, integrity
# checked) once, into tools/redocly/node_modules, not per run.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=tools/redocly
bin=$dir/node_modules/.bin/redocly
if ! command -v npm >/dev/null 2>&1; then
	if [ "${CI:-}" = "true" ]; then
		echo "lint-api: npm is missing (install Node.js and npm)" >&2
		exit 1
	fi
	echo "lint-api: npm is missing; the OpenAPI lint is skipped" >&2
	exit 0
fi
if [ ! -x "$bin" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
	echo "lint-api: installing the pinned Redocly CLI into $dir" >&2
	npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
fi
# No telemetry or update checks: this machine reaches only the registries.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
json=$("$bin" lint --format=json api/openapi.yaml 2>/dev/null) || true
totals=$(printf '%s' "$json" | node -e '
let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
  try { const t = JSON.parse(s).totals; console.log(`${t.errors} ${t.warnings}`); }
  catch (e) { console.log("unreadable"); }
});')
if [ "$totals" != "0 0" ]; then
	# Show the problems in the readable form, then fail.
	"$bin" lint --format=stylish api/openapi.yaml 2>&1 | grep -v '^\s*[║╔╚]' >&2 || true
	echo "lint-api: api/openapi.yaml has problems (errors warnings: $totals)" >&2
	exit 1
fi
echo "lint-api: api/openapi.yaml: 0 errors, 0 warnings (Redocly CLI $("$bin" --version 2>/dev/null | tail -1), recommended rules)"
