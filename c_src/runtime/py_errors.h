// Python exceptions as Erlang terms.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include <string>

namespace ep {

struct PythonError {
    ERL_NIF_TERM reason;     // {TypeName :: atom() (binary past the atom budget), Message :: binary()}
    ERL_NIF_TERM traceback;  // the formatted traceback, a binary
    bool interrupted;        // the exception was our erlang.Interrupted
};

// Takes (and clears) the pending Python exception as text, for messages
// that are not Erlang terms. Never PyErr_Print: on SystemExit it would exit
// the whole VM.
std::string take_python_error_text();

// Takes (and clears) the pending Python exception, which must be set.
// `interrupted_type` may be nullptr.
PythonError take_python_error(ErlNifEnv* env, PyObject* interrupted_type);

}  // namespace ep
