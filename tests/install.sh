#!/usr/bin/env bash
# install.sh BUILD SOURCE CC SANITIZE — the front door as a user meets it:
# `cmake --install` into a temporary prefix puts the library, the public
# headers only and the command there; the header's worked example
# (examples/train_mlp.c) builds against the installed copy with
# `$CC prog.c $(pkg-config --cflags --libs starpipe)` and through CMake's
# find_package(starpipe), runs from elsewhere without LD_LIBRARY_PATH, and
# learns (its loss falls under half; it exits 1 otherwise). A private
# header of graph/ must not be reachable with the installed flags.
#
# SANITIZE=ON (the ASan + UBSan build): the installed library is
# instrumented, so the example is built with the same sanitizers, as a
# program linking a sanitizer build must be.
set -u
build=${1:?usage: install.sh BUILD SOURCE CC SANITIZE}
src=${2:?} cc=${3:?} sanitize=${4:-OFF}
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
prefix=$tmp/prefix
san=()
[ "$sanitize" = ON ] && san=(-fsanitize=address,undefined -fno-omit-frame-pointer)

if ! cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log"; echo "FAIL: cmake --install"; exit 1
fi

# what is installed: the two public headers, the library, the command, the package files
headers=$(cd "$prefix/include" && ls | tr '\n' ' ')
[ "$headers" = "starpipe.h starpipe_models.h " ] || fail "installed headers: '$headers' (only the public ones belong there)"
for f in lib/libstarpipe.so lib/pkgconfig/starpipe.pc lib/cmake/starpipe/starpipeConfig.cmake bin/starpipe; do
    [ -e "$prefix/$f" ] || fail "$f is not installed"
done
readelf -d "$prefix/lib/libstarpipe.so" | grep -q "$build" && fail "the installed library's RUNPATH points into the build tree"

# pkg-config, as a user with a prefix of their own sets it up
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
if flags=$(pkg-config --cflags --libs starpipe); then
    case "$flags" in *"$src"* | *"$build"*) fail "pkg-config points into the source or build tree: $flags" ;; esac
    [ "$(pkg-config --modversion starpipe)" = "$(sed -n 's/^project(starpipe VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")" ] ||
        fail "pkg-config version $(pkg-config --modversion starpipe) differs from the project's"
    if "$cc" "${san[@]}" -Wall -Wextra -Werror "$src/examples/train_mlp.c" $flags -o "$tmp/train_mlp" 2>"$tmp/cc.log"; then
        ldd "$tmp/train_mlp" | grep -q "libstarpipe.so.* => $prefix/lib/" ||
            fail "train_mlp does not load the installed libstarpipe: $(ldd "$tmp/train_mlp" | grep starpipe)"
        if (cd "$tmp" && env -u LD_LIBRARY_PATH ./train_mlp >"$tmp/run.out" 2>&1); then
            grep -q ": learnt$" "$tmp/run.out" || fail "train_mlp exited 0 without saying it learnt: $(cat "$tmp/run.out")"
        else
            fail "train_mlp (pkg-config build) failed: $(tail -5 "$tmp/run.out")"
        fi
    else
        fail "the example does not build with pkg-config's flags: $(head -20 "$tmp/cc.log")"
    fi
    printf '#include "engine.h"\nint main(void) { return 0; }\n' >"$tmp/private.c"
    "$cc" -c $(pkg-config --cflags starpipe) "$tmp/private.c" -o "$tmp/private.o" 2>/dev/null &&
        fail "a private header (engine.h) is reachable with the installed flags"
else
    fail "pkg-config does not find starpipe in $PKG_CONFIG_PATH"
fi

# the installed command runs on its own
"$prefix/bin/starpipe" --help | grep -q "^  train " || fail "the installed starpipe --help"
(cd "$tmp" && env -u LD_LIBRARY_PATH "$prefix/bin/starpipe" train --hidden 8 --inputs 4 --batch 8 --samples 16 \
    --steps 2 --quiet >"$tmp/cli.out" 2>&1) || fail "the installed starpipe train: $(tail -5 "$tmp/cli.out")"

# CMake's find_package(starpipe), as examples/CMakeLists.txt uses it
if cmake -S "$src/examples" -B "$tmp/examples" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_C_FLAGS="${san[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san[*]}" >"$tmp/cmake.log" 2>&1 &&
    cmake --build "$tmp/examples" >>"$tmp/cmake.log" 2>&1; then
    (cd "$tmp" && env -u LD_LIBRARY_PATH "$tmp/examples/train_mlp" >"$tmp/run2.out" 2>&1) &&
        grep -q ": learnt$" "$tmp/run2.out" || fail "train_mlp (CMake build): $(tail -5 "$tmp/run2.out")"
else
    fail "find_package(starpipe) build: $(tail -20 "$tmp/cmake.log")"
fi

if [ "$fails" -ne 0 ]; then echo "install: $fails check(s) failed"; exit 1; fi
echo "install: all checks passed ($(tail -1 "$tmp/run.out"))"
