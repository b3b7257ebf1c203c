#!/bin/sh
# SPDX-License-Identifier: MIT
# The installed tree as a packager ships it: `meson install` of this build
# into a DESTDIR, then programs compiled and linked against it with
# pkg-config alone, and run. Checks that the headers are under
# <includedir>/mpkit (and no internal header is), that pkg-config's flags
# find them, that a static link gets libmpguard's private dependencies from
# the .pc files, and that libmplog works on its own.
# Usage: check-install.sh BUILD_ROOT SOURCE_DIR PREFIX INCLUDEDIR LIBDIR CC [CC ARGS...]
set -eu
build=$1 src=$2 prefix=$3 includedir=$4 libdir=$5
shift 5
case $includedir in /*) ;; *) includedir=$prefix/$includedir ;; esac
case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac
command -v pkg-config >/dev/null || { echo "pkg-config not found"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
fail() { echo "check-install: $*" >&2; exit 1; }

meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; fail "meson install failed"; }

inc=$dest$includedir
lib=$dest$libdir
for h in mpkit/mpguard.h mpkit/mplog.h; do
	[ -f "$inc/$h" ] || fail "$includedir/$h not installed"
done
for h in mpguard.h mplog.h; do
	[ ! -e "$inc/$h" ] || fail "$includedir/$h installed outside mpkit/"
done
if find "$dest" -name '*-int.h' | grep -q .; then
	fail "internal headers installed: $(find "$dest" -name '*-int.h')"
fi

# pkg-config finds the installed .pc files; the sysroot prefixes the
# paths they name with the DESTDIR.
PKG_CONFIG_PATH=$lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
for m in libmpguard libmplog; do
	pkg-config --exists --print-errors "$m" || fail "pkg-config does not find $m"
	[ "$(pkg-config --modversion "$m")" = "$(pkg-config --modversion libmplog)" ] ||
		fail "$m: another version than libmplog"
done
case " $(pkg-config --cflags libmpguard) " in
*" -I$inc/mpkit "*) ;;
*) fail "pkg-config --cflags libmpguard: $(pkg-config --cflags libmpguard), not -I$inc/mpkit" ;;
esac

# Shared: #include <mpguard.h> with pkg-config's flags.
# shellcheck disable=SC2046 # the flags are words
"$@" -Wall -Wextra -Werror -o "$tmp/use-mpguard" "$src/install/use-mpguard.c" \
	$(pkg-config --cflags --libs libmpguard) || fail "cannot build against the shared libraries"
LD_LIBRARY_PATH=$lib "$tmp/use-mpguard" || fail "use-mpguard (shared) failed"

# Static: the archives, and what the .pc files say they need.
libs=$(pkg-config --static --libs libmpguard |
	sed -e 's/^/ /' -e 's/$/ /' \
	    -e 's/ -lmpguard / -Wl,-Bstatic -lmpguard -Wl,-Bdynamic /' \
	    -e 's/ -lmplog / -Wl,-Bstatic -lmplog -Wl,-Bdynamic /')
# shellcheck disable=SC2046,SC2086
"$@" -Wall -Wextra -Werror -o "$tmp/use-mpguard-static" "$src/install/use-mpguard.c" \
	$(pkg-config --cflags libmpguard) $libs || fail "cannot link statically: $libs"
if ldd "$tmp/use-mpguard-static" | grep -q 'libmp\(guard\|log\)'; then
	fail "the static link still needs a shared mpkit library"
fi
"$tmp/use-mpguard-static" || fail "use-mpguard (static) failed"

# libmplog alone, its header by its installed path (no -I of ours).
# shellcheck disable=SC2046
"$@" -Wall -Wextra -Werror -I"$inc" -o "$tmp/use-mplog" "$src/install/use-mplog.c" \
	$(pkg-config --libs libmplog) || fail "cannot build against libmplog alone"
if LD_LIBRARY_PATH=$lib ldd "$tmp/use-mplog" | grep -q libmpguard; then
	fail "a libmplog program links libmpguard"
fi
LD_LIBRARY_PATH=$lib "$tmp/use-mplog" || fail "use-mplog failed"
echo "check-install: ok"
