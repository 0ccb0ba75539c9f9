# erlang_python's isolated worker (spec §11), started by an isolated context
# as `PYTHON erlang_python_worker.py' under priv/erlang_python_launcher.
#
# This file only checks the Python version, in syntax that every Python
# parses, so a Python that is too old says so instead of failing on syntax.
# The worker itself is erlang_python_isolated.py beside it.
import os
import struct
import sys


def _refuse(version):
    # {python_too_old, <<Version>>} as the first frame ({packet, 4}).
    text = version.encode("ascii", "replace")
    atom = b"python_too_old"
    term = (b"\x83h\x02w" + struct.pack(">B", len(atom)) + atom
            + b"m" + struct.pack(">I", len(text)) + text)
    os.write(1, struct.pack(">I", len(term)) + term)
    sys.exit(2)


if sys.version_info < (3, 9):
    _refuse("%d.%d.%d" % tuple(sys.version_info[:3]))

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import erlang_python_isolated  # noqa: E402

# User code imports from sys.path as it would in-process, not from here.
del sys.path[0]
if sys.path and os.path.abspath(sys.path[0] or ".") == here:
    del sys.path[0]
erlang_python_isolated.main()
