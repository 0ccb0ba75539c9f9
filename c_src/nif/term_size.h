// How much copying a term costs, found without copying it.
#pragma once

#include <erl_nif.h>

#include <cstddef>

namespace ep {

// About how many words a copy of `term` takes (shared subterms count once per
// use, as a copy expands them). Stops counting once `limit` is passed and
// then returns a value above it, so a small limit keeps the walk cheap.
std::size_t copy_size_upto(ErlNifEnv* env, ERL_NIF_TERM term, std::size_t limit);

}  // namespace ep
