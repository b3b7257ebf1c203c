#!/bin/sh
# SPDX-License-Identifier: MIT
# mpkit as a subproject of a small parent project, the way a program
# vendors it: dependency('libmpguard') and dependency('libmplog') find the
# libraries through meson.override_dependency(), with only the libraries
# built; then a parent of libmplog alone, with libmpguard (and so libunwind
# and libdw) disabled. Each program is run.
# Usage: check-subproject.sh SOURCE_ROOT
set -eu
src=$(cd "$1" && pwd)
command -v meson >/dev/null || { echo "meson not found"; exit 77; }
command -v ninja >/dev/null || { echo "ninja not found"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check-subproject: $*" >&2; exit 1; }

# parent DIR MESON_BUILD_BODY: a parent project that vendors mpkit.
parent() {
	mkdir -p "$1/subprojects"
	ln -s "$src" "$1/subprojects/mpkit"
	cp "$src/tests/install/use-mpguard.c" "$1/"
	# <mplog.h>, as pkg-config's flags and the subproject's dependency
	# find it (<mpkit/mplog.h> is the installed path).
	sed 's|<mpkit/mplog.h>|<mplog.h>|' "$src/tests/install/use-mplog.c" >"$1/use-mplog.c"
	printf "project('parent', 'c', default_options : ['c_std=c17', 'warning_level=2', 'werror=true'])\n%s\n" "$2" >"$1/meson.build"
	# forcefallback: never a libmpguard installed on this machine.
	meson setup --wrap-mode=forcefallback "$1/build" "$1" >"$1/setup.log" 2>&1 ||
		{ cat "$1/setup.log"; fail "$1: meson setup failed"; }
	ninja -C "$1/build" >"$1/build.log" 2>&1 || { cat "$1/build.log"; fail "$1: build failed"; }
}
only_libs="'tools=false', 'examples=false', 'man=false', 'tests=false'"

# Both libraries. The first lookup names the subproject; the second is
# served by the override alone.
parent "$tmp/both" "
mpguard = dependency('libmpguard', fallback : 'mpkit', default_options : [$only_libs])
mplog = dependency('libmplog')
executable('use-mpguard', 'use-mpguard.c', dependencies : [mpguard, mplog])
executable('use-mplog', 'use-mplog.c', dependencies : mplog)"
"$tmp/both/build/use-mpguard" || fail "use-mpguard from the subproject failed"
"$tmp/both/build/use-mplog" || fail "use-mplog from the subproject failed"
# Only the libraries were built: no tool, test or example.
for t in mplog mpattach demo test-map; do
	if find "$tmp/both/build/subprojects" -type f -name "$t" | grep -q .; then
		fail "the subproject built $t"
	fi
done

# libmplog alone: libmpguard, and libunwind and libdw with it, not even
# looked for.
parent "$tmp/mplog" "
mplog = dependency('libmplog', fallback : 'mpkit',
  default_options : ['libmpguard=disabled', $only_libs])
executable('use-mplog', 'use-mplog.c', dependencies : mplog)"
"$tmp/mplog/build/use-mplog" || fail "use-mplog from a libmplog-only subproject failed"
if find "$tmp/mplog/build/subprojects" -name 'libmpguard*' | grep -q .; then
	fail "libmpguard was built with -Dlibmpguard=disabled"
fi
grep -q "libunwind skipped" "$tmp/mplog/setup.log" ||
	fail "libunwind was looked for: $(grep -i libunwind "$tmp/mplog/setup.log")"
echo "check-subproject: ok"
