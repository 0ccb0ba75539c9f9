// The built-in Python module `erlang`: Erlang pids, references, atoms and
// shared binaries (erlang.Buffer) as Python types. Multi-phase init with all
// state in the module (none in C globals), so every interpreter gets its own
// copy (PEP 489, PEP 684).
#pragma once

#include <Python.h>
#include <erl_nif.h>

namespace ep {

struct ErlangModuleState {
    PyTypeObject* pid_type;
    PyTypeObject* ref_type;
    PyTypeObject* atom_type;
    PyTypeObject* buffer_type;  // erlang.Buffer (buffer_object.h)
    PyObject* interrupted;
    PyObject* error;  // erlang.Error: a registered Erlang function failed
    // The erlang.Pid of the process a task on the event loop was started for:
    // asyncio tasks copy the context they are made in, so every step of the
    // task (and tasks it makes) sees it.
    PyObject* caller_var;
};

// Registers the module as built-in; call before Py_InitializeFromConfig.
bool register_erlang_module();

// The state of an `erlang` module object, or nullptr if `module` is not ours.
const ErlangModuleState* erlang_module_state(PyObject* module);

// A new erlang.Pid / erlang.Ref holding its own copy of `term`.
PyObject* make_term_object(PyTypeObject* type, ERL_NIF_TERM term);

// The term held by an erlang.Pid / erlang.Ref, copied into `env`. The object
// must be of one of those two types.
ERL_NIF_TERM term_object_value(PyObject* obj, ErlNifEnv* env);

}  // namespace ep
