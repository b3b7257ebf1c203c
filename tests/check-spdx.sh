#!/bin/sh
# SPDX-License-Identifier: MIT
# Licensing as a distribution checks it: a LICENSE file with the MIT text
# that meson.build's license names, and an SPDX-License-Identifier: MIT
# line within the first three lines of every source file (code, build
# files, scripts, linker version scripts, man pages, suppressions and
# fuzzing dictionaries). Not checked: documentation (*.md), seed corpora,
# and the alias page template, which must be one .so line.
# Usage: check-spdx.sh SOURCE_ROOT
set -eu
root=$1
bad=0
grep -q "^MIT License" "$root/LICENSE" 2>/dev/null || { echo "no MIT LICENSE file"; bad=1; }
grep -q "license : 'MIT'" "$root/meson.build" || { echo "meson.build does not say MIT"; bad=1; }
missing=$(
	{
		printf '%s\n' "$root/dev" "$root/.ci/run"
		find "$root" \( -path "$root/.git" -o -path "$root/build*" -o -path "$root/subprojects" \
			-o -name corpus \) -prune -o -type f \( -name '*.c' -o -name '*.h' \
			-o -name meson.build -o -name meson_options.txt -o -name '*.sh' -o -name '*.py' \
			-o -name '*.sym' -o -name '*.supp' -o -name '*.dict' -o -name '*.[13]' \) -print
	} | while read -r f; do
		head -n 3 "$f" | grep -q 'SPDX-License-Identifier: MIT' || echo "$f"
	done
)
if [ -n "$missing" ]; then
	echo "no SPDX-License-Identifier: MIT in the first three lines of:"
	echo "$missing"
	bad=1
fi
exit $bad
