#!/usr/bin/env bash
# ensure-gitleaks.sh: builds the gitleaks pinned in tools/gitleaks/go.mod into
# .tools/gitleaks, from source through the Go module proxy (go.sum checked),
# once: a binary already built at the pinned version, and newer than the pin,
# is kept. configs/scanners_test.go runs it over configs/gitleaks.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
go=${GO:-go}
mod=github.com/zricethezav/gitleaks/v8
want=$(awk -v m="$mod" '$1 == m { print $2 }' tools/gitleaks/go.mod)
if [ -z "$want" ]; then
	echo "ensure-gitleaks: no version of $mod in tools/gitleaks/go.mod" >&2
	exit 1
fi
bin=.tools/gitleaks
if [ -x "$bin" ] && [ "$("$bin" version 2>/dev/null)" = "$want" ] &&
	[ "$bin" -nt tools/gitleaks/go.mod ] && [ "$bin" -nt tools/gitleaks/go.sum ]; then
	exit 0
fi
echo "ensure-gitleaks: building gitleaks $want into $bin (a cold build takes minutes)" >&2
mkdir -p .tools
# Built beside the target, then renamed: a concurrent run never sees half a binary.
tmp=$(mktemp "$PWD/.tools/gitleaks.XXXXXX")
trap 'rm -f "$tmp"' EXIT
"$go" build -C tools/gitleaks -o "$tmp" \
	-ldflags "-s -w -X=$mod/version.Version=$want" "$mod"
mv -f "$tmp" "$bin"
trap - EXIT
echo "ensure-gitleaks: $("$bin" version)" >&2
