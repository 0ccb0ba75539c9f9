// The functions of the Python `erlang` module (see erlang_functions.cpp).
#pragma once

#include <Python.h>
#include <erl_nif.h>

namespace ep {

extern PyMethodDef erlang_module_functions[];

struct ErlangModuleState;

// The erlang.Pid of the process the running Python code works for: the
// caller of the request on this thread, else the process an event-loop task
// was started for. New reference; nullptr without an exception when there is
// none, with one on failure.
PyObject* calling_process(const ErlangModuleState* st);

// The same process as a pid, into *pid. False when there is none (with a
// Python exception set only if looking failed).
bool calling_pid(const ErlangModuleState* st, ErlNifPid* pid);

}  // namespace ep
