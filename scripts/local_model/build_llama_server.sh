#!/usr/bin/env bash
# Builds llama.cpp's llama-server (CPU only, AVX2 baseline, static) from the llama.cpp tree that the
# PyPI sdist of llama-cpp-python 0.3.16 vendors: the model tests need a real OpenAI-compatible
# server, and PyPI is the one source these machines reach. Needs cmake, a C++ compiler and make.
#
# usage: scripts/local_model/build_llama_server.sh [PREFIX]    -> PREFIX/bin/llama-server
# PREFIX defaults to $ONCALL_MODEL_CACHE or ~/.cache/oncall-model. Does nothing when the binary
# is already there (about 2.5 minutes on 2 cores otherwise).
set -euo pipefail
PREFIX=${1:-${ONCALL_MODEL_CACHE:-$HOME/.cache/oncall-model}}
BIN="$PREFIX/bin/llama-server"
if [ -x "$BIN" ]; then echo "$BIN: present"; exit 0; fi

VERSION=0.3.16
SDIST_SHA256=34ed0f9bd9431af045bb63d9324ae620ad0536653740e9bb163a2e1fcb973be6
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PY" -m pip download --no-deps --no-binary :all: --no-cache-dir -q -d "$WORK" "llama-cpp-python==$VERSION"
echo "$SDIST_SHA256  $WORK/llama_cpp_python-$VERSION.tar.gz" | sha256sum -c --quiet -
tar xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK" "llama_cpp_python-$VERSION/vendor/llama.cpp"

# GGML_NATIVE stays off: a native build picked AMX on these CPUs and crashed at warm-up.
if ! cmake -S "$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp" -B "$WORK/build" \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    ${EXTRA_CMAKE_ARGS:-} >"$WORK/cmake.log" 2>&1; then
  tail -n 40 "$WORK/cmake.log" >&2; exit 1
fi
if ! cmake --build "$WORK/build" --target llama-server -j"$(nproc)" >"$WORK/build.log" 2>&1; then
  tail -n 40 "$WORK/build.log" >&2; exit 1
fi
mkdir -p "$PREFIX/bin"
# Installed under a temporary name first so an interrupted copy never looks like a finished build.
install -m 755 "$WORK/build/bin/llama-server" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$BIN: built"
