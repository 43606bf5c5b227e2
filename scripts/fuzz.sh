#!/usr/bin/env bash
# fuzz.sh [FUZZTIME [DIR...]]: runs every Go fuzz target under the given
# package directories (default: the whole module) for FUZZTIME each (default
# 5s), one after another. Seed corpora under testdata/fuzz are also run by
# plain go test.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-5s}
shift || true
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(.)
count=0
while IFS= read -r file; do
	dir=$(dirname "$file")
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
		echo "fuzz: $target in ./$dir for $fuzztime"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./$dir"
		count=$((count + 1))
	done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' "${dirs[@]}" | sed 's#^\./##' | sort)
echo "fuzz: $count targets ran clean"
