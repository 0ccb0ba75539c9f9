#!/bin/sh
# Prints the path of the Python interpreter the NIF is built against.
#
# Order: $ERLANG_PYTHON (an executable path or a command name), else the
# newest CPython >= 3.12 with a shared libpython and headers (pyenv builds
# included), else Debian's /usr/bin/python3. A candidate without a shared
# libpython cannot be embedded next to C extension modules, so it is skipped.
set -eu

usable() {
    # usable PYTHON -> exit 0 when PYTHON has a shared libpython and Python.h
    "$1" - <<'EOF' 2>/dev/null
import os, sys, sysconfig
ok = (sys.implementation.name == "cpython"
      and sysconfig.get_config_var("Py_ENABLE_SHARED") == 1
      and os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))
sys.exit(0 if ok else 1)
EOF
}

if [ -n "${ERLANG_PYTHON:-}" ]; then
    py=$(command -v "$ERLANG_PYTHON" || true)
    if [ -z "$py" ] || ! usable "$py"; then
        echo "ERLANG_PYTHON=$ERLANG_PYTHON is not a CPython with a shared libpython and headers" >&2
        exit 1
    fi
    echo "$py"
    exit 0
fi

candidates=""
pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for minor in 13 12; do
    for dir in $(ls -d "$pyenv_root"/versions/3."$minor".* 2>/dev/null | sort -t. -k3 -n -r); do
        candidates="$candidates $dir/bin/python3.$minor"
    done
    candidates="$candidates /usr/local/bin/python3.$minor /usr/bin/python3.$minor"
done
candidates="$candidates /usr/bin/python3"

for py in $candidates; do
    if [ -x "$py" ] && usable "$py"; then
        echo "$py"
        exit 0
    fi
done
echo "no CPython with a shared libpython found; install python3-dev or set ERLANG_PYTHON" >&2
exit 1
