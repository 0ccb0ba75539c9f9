// Python object -> Erlang term (spec §5, Python to Erlang).
#pragma once

#include "convert.h"

namespace ep {

enum class Unwrap {
    No,         // the standard rules: objects with no Erlang form become handles
    TopLevel,   // py:to_term/1: also turn sets, views, ranges and the like at the top into lists
};

// Converts `obj` into a term built in `env`. False with *out set to an error
// reason ({Type, Message} of a Python error, or nesting_too_deep). GIL held.
bool py_to_term(PyObject* obj, ErlNifEnv* env, const ConvertScope& scope, ERL_NIF_TERM* out,
                Unwrap unwrap = Unwrap::No);

}  // namespace ep
