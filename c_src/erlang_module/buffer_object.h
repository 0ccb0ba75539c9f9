// erlang.Buffer: an Erlang binary's bytes seen from Python without a copy
// (spec §10). Made from {buffer, Bin}; read-only; keeps the binary alive for
// as long as Python holds the object or any view of it.
#pragma once

#include <Python.h>
#include <erl_nif.h>

namespace ep {

extern PyType_Spec buffer_spec;

// A new erlang.Buffer over the binary `bin` (a term of any live env), or
// nullptr with an exception set. The binary is shared, not copied.
PyObject* make_buffer_object(PyTypeObject* type, ERL_NIF_TERM bin);

// The binary under an erlang.Buffer, in `env`: the same bytes, no copy.
ERL_NIF_TERM buffer_object_value(PyObject* obj, ErlNifEnv* env);

}  // namespace ep
