#!/usr/bin/env bash
# test.sh [--sanitize] — set-up and build if missing, then run the CTest suite.
# With --sanitize: the ASan + UBSan build, unit tests under the sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
dir=build
if [ "${1:-}" = --sanitize ]; then
    dir=build-asan
    # StarPU, hwloc and OpenBLAS are not built with the sanitizers; their own
    # allocations at exit are not starpipe's leaks.
    export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
    export ASAN_OPTIONS="abort_on_error=0:detect_odr_violation=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    # hwloc's PCI plugin leaks inside libpciaccess and is dlclose'd before
    # LeakSanitizer looks, so the report cannot be suppressed by name: leave
    # the plugin out of the sanitizer run (CPU topology does not need it).
    export HWLOC_PLUGINS_BLACKLIST=hwloc_pci
fi
cd "$dir"
ctest --output-on-failure -j1
