#!/bin/sh
# SPDX-License-Identifier: MIT
# Fails unless LIB exists, exports at least one symbol, and every exported
# symbol starts with PREFIX (no unprefixed symbol leaks out of the library).
set -eu
lib=$1 prefix=$2
[ -f "$lib" ] || { echo "check-symbols: $lib: no such file" >&2; exit 1; }
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | sed 's/@.*//')
[ -n "$syms" ] || { echo "check-symbols: $lib exports nothing" >&2; exit 1; }
bad=$(printf '%s\n' "$syms" | grep -v "^$prefix" | grep -v '^MP[A-Z_]*_[0-9.]*$' || true)
if [ -n "$bad" ]; then
	echo "check-symbols: $lib leaks unprefixed symbols:" >&2
	printf '  %s\n' $bad >&2
	exit 1
fi
echo "$lib: $(printf '%s\n' "$syms" | grep -c "^$prefix") symbols, all $prefix*"
