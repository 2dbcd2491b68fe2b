#!/usr/bin/env bash
# Build tagmem's Debian packages: cmake/package-deb.sh [OUT_DIR]
# A release build of its own (prefix /usr, no tests) in OUT_DIR/build, then CPack's DEB
# generator (cmake/package.cmake): OUT_DIR/{tagmem,libtagmem1,libtagmem-dev}_*.deb.
# Needs dpkg-dev (dpkg-shlibdeps) besides the build dependencies: tests/deps.sh build.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$top/build-deb}" && cd "${1:-$top/build-deb}" && pwd)
cmake -S "$top" -B "$out/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
	-DTAGMEM_TESTS=OFF >"$out/configure.log" || { cat "$out/configure.log" >&2; exit 1; }
cmake --build "$out/build" -j"$(nproc)" >"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log" >&2; exit 1; }
(cd "$out/build" && cpack -G DEB -B "$out/cpack" >"$out/cpack.log" 2>&1) ||
	{ tail -n 30 "$out/cpack.log" >&2; exit 1; }
mv "$out"/cpack/*.deb "$out/"
rm -rf "$out/cpack/_CPack_Packages"
ls "$out"/*.deb
