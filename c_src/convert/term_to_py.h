// Erlang term -> Python object (spec §5, Erlang to Python).
#pragma once

#include "convert/convert.h"

namespace ep {

// Converts `term` (valid in `env`) to a new object. On failure returns an
// empty ref and sets *reason, built in `env`: {unsupported_term, T},
// improper_list, nesting_too_deep, env_wrong_interpreter, or a Python error
// {Type, Message} (a map key that is not hashable, say). GIL held.
PyRef term_to_py(ErlNifEnv* env, ERL_NIF_TERM term, const ConvertScope& scope, ERL_NIF_TERM* reason);

// A name given as an atom or a binary, as str. Empty with *reason set otherwise.
PyRef name_to_py(ErlNifEnv* env, ERL_NIF_TERM term, const ConvertScope& scope, ERL_NIF_TERM* reason);

}  // namespace ep
