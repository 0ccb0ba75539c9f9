// The functions of the Python `erlang` module (see erlang_functions.cpp).
#pragma once

#include <Python.h>

namespace ep {

extern PyMethodDef erlang_module_functions[];

struct ErlangModuleState;

// The erlang.Pid of the process the running Python code works for: the
// caller of the request on this thread, else the process an event-loop task
// was started for. New reference; nullptr without an exception when there is
// none, with one on failure.
PyObject* calling_process(const ErlangModuleState* st);

}  // namespace ep
