// Atoms made on behalf of Python code.
//
// The atom table is never garbage-collected and the VM aborts when it is
// full, so Python code must not be able to fill it (erlang.Atom(str(i)) in
// a loop, or exception classes made on the fly). Existing atoms are always
// used; new ones are made only while a fixed budget lasts.
#pragma once

#include <erl_nif.h>

#include <cstddef>
#include <string_view>

namespace ep {

constexpr std::size_t kNewAtomBudget = 100000;

// The atom named by `utf8` (at most 255 characters), existing or new. False
// when the name is too long, or new and the budget is spent.
bool make_atom_from_python(ErlNifEnv* env, std::string_view utf8, ERL_NIF_TERM* out);

std::size_t atoms_made_for_python();

}  // namespace ep
