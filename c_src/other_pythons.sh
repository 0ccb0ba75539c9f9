#!/bin/sh
# Prints the other usable Pythons (one per line) that the test command also
# runs the suites against: the newest 3.13 and 3.12 builds and Debian's own
# python3, minus the one the default build already uses.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
default=$(sh "$here/select_python.sh")
pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for minor in 13 12; do
    newest=$(ls -d "$pyenv_root"/versions/3."$minor".* 2>/dev/null | sort -t. -k3 -n -r | head -1)
    [ -n "$newest" ] && echo "$newest/bin/python3.$minor"
done | while read -r py; do
    [ -x "$py" ] && [ "$py" != "$default" ] && ERLANG_PYTHON="$py" sh "$here/select_python.sh" >/dev/null 2>&1 && echo "$py"
done
if [ -x /usr/bin/python3 ] && [ /usr/bin/python3 != "$default" ] && \
   ERLANG_PYTHON=/usr/bin/python3 sh "$here/select_python.sh" >/dev/null 2>&1; then
    echo /usr/bin/python3
fi
