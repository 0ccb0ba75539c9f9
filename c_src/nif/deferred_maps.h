// The receiving side of deferred maps (py_to_term.h, kDirectMapKeys): a NIF
// the receiving process calls on its own scheduler, where OTP 25 can build
// maps of any size, to turn every {MapMarker, [{K, V}]} in a result into its
// map. Only the containers on the way to a marker are rebuilt; everything
// else is returned as it came.
#pragma once

#include <erl_nif.h>

namespace ep {

// finish_maps(Term) -> {ok, Term'} | {error, {duplicate_key, K}} | too_deep
// (markers nested past 100 levels: the caller finishes those itself)
ERL_NIF_TERM nif_finish_maps(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

}  // namespace ep
