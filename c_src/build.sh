#!/bin/sh
# Builds priv/erlang_python_nif.so with CMake against the selected Python.
# Called by rebar3's pre_hook; each Python gets its own CMake build tree so
# switching ERLANG_PYTHON never mixes objects from two versions.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
py=$(sh "$root/c_src/select_python.sh")
tag=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
sum=$(echo "$py" | cksum | cut -d' ' -f1)
build_type=${ERLANG_PYTHON_BUILD_TYPE:-RelWithDebInfo}
# ERLANG_PYTHON_SANITIZE=address,undefined builds with ASan/UBSan (see `make sanitize`).
sanitize=${ERLANG_PYTHON_SANITIZE:-}
build="$root/_build/cmake/py$tag-$sum-$build_type${sanitize:+-$(echo "$sanitize" | tr ',' '-')}"
erts_include=$(erl -noshell -eval \
    'io:format("~s/erts-~s/include", [code:root_dir(), erlang:system_info(version)]), halt().')

if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root/c_src" -B "$build" \
        -DPython_EXECUTABLE="$py" \
        -DERTS_INCLUDE_DIR="$erts_include" \
        -DCMAKE_BUILD_TYPE="$build_type" \
        -DSANITIZE="$(echo "$sanitize" | tr ',' ';')" >/dev/null
fi
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)"
mkdir -p "$root/priv"
# Copy only when changed so a no-op build leaves the loaded library alone.
if ! cmp -s "$build/erlang_python_nif.so" "$root/priv/erlang_python_nif.so"; then
    cp "$build/erlang_python_nif.so" "$root/priv/erlang_python_nif.so.tmp"
    mv "$root/priv/erlang_python_nif.so.tmp" "$root/priv/erlang_python_nif.so"
fi
if ! cmp -s "$build/erlang_python_launcher" "$root/priv/erlang_python_launcher"; then
    cp "$build/erlang_python_launcher" "$root/priv/erlang_python_launcher.tmp"
    mv "$root/priv/erlang_python_launcher.tmp" "$root/priv/erlang_python_launcher"
fi
echo "$build" > "$root/_build/cmake/current"
