// Python's sys.stdout and sys.stderr, while serving a call, go to the
// calling process (spec §13), which writes them to its group leader.
#pragma once

#include <Python.h>

namespace ep {

// erlang._write(is_stderr, text) -> bool: sends `text` to the process whose
// call (py:call/eval/exec, waiting in receive) runs on this thread, as
// {Tag, py_output, stdout | stderr, Binary}, before that call's answer.
// False when no such call runs here: the caller writes to the stream it
// had. Output past kMaxOutputPerCall bytes in one call is dropped, with one
// line saying so: a call printing without end cannot flood its caller.
PyObject* erlang_write(PyObject* module, PyObject* const* args, Py_ssize_t nargs);

}  // namespace ep
