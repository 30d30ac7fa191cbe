#!/usr/bin/env bash
# gpu_prepare.sh — here, before a GPU session: builds with CUDA and gathers in
# .deps/gpu (ignored by git) what the bare GPU machine needs: the programs
# (stripped) in bin/ and the shared libraries it lacks in lib/ (StarPU, hwloc,
# OpenBLAS, ...; glibc and CUDA's own stay out). Then, on the GPU machine:
#
#   device run, carry [".deps/gpu"]:   bash tools/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
grep -qs '^/.deps/' .git/info/exclude || { mkdir -p .git/info; echo /.deps/ >> .git/info/exclude; }
rm -rf .deps/gpu
mkdir -p .deps/gpu/bin
cp build/starpipe build/test_* .deps/gpu/bin/
rm -f .deps/gpu/bin/*.so*
strip --strip-unneeded .deps/gpu/bin/*
prefix=$(PKG_CONFIG_PATH=/opt/starpu-1.4/lib/pkgconfig pkg-config --variable=libdir starpu-1.4)
libs=("$prefix"/libstarpu-1.4.so)
[ -e "$prefix/libstarpumpi-1.4.so" ] && libs+=("$prefix/libstarpumpi-1.4.so")
bash ../shared/device/bundle-runtime.sh .deps/gpu .deps/gpu/bin/* "${libs[@]}" >/dev/null
du -sh .deps/gpu
