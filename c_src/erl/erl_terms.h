// Small helpers for building Erlang terms.
#pragma once

#include <erl_nif.h>

#include <cstring>
#include <string_view>

#include "erl/atoms.h"

namespace ep {

inline ERL_NIF_TERM make_binary(ErlNifEnv* env, std::string_view text) {
    ERL_NIF_TERM term;
    unsigned char* data = enif_make_new_binary(env, text.size(), &term);
    if (!text.empty()) std::memcpy(data, text.data(), text.size());
    return term;
}

inline ERL_NIF_TERM make_ok(ErlNifEnv* env, ERL_NIF_TERM value) { return enif_make_tuple2(env, atoms::ok, value); }
inline ERL_NIF_TERM make_error(ErlNifEnv* env, ERL_NIF_TERM reason) {
    return enif_make_tuple2(env, atoms::error, reason);
}
// {error, {Tag, Detail}}
inline ERL_NIF_TERM make_error(ErlNifEnv* env, ERL_NIF_TERM tag, ERL_NIF_TERM detail) {
    return make_error(env, enif_make_tuple2(env, tag, detail));
}
// {error, {Tag, <<"text">>}}
inline ERL_NIF_TERM make_error(ErlNifEnv* env, ERL_NIF_TERM tag, std::string_view text) {
    return make_error(env, tag, make_binary(env, text));
}

// {error, {badarg, What}}: an argument a NIF refuses.
inline ERL_NIF_TERM badarg(ErlNifEnv* env, ERL_NIF_TERM what) { return make_error(env, atoms::badarg, what); }

// Module, function and attribute names come as atoms or binaries.
inline bool is_name(ErlNifEnv* env, ERL_NIF_TERM term) { return enif_is_atom(env, term) || enif_is_binary(env, term); }

inline bool is_proper_list(ErlNifEnv* env, ERL_NIF_TERM term) {
    unsigned len;
    return enif_get_list_length(env, term, &len) != 0;
}

// enif_make_pid is a macro whose const cast trips -Wignored-qualifiers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-qualifiers"
inline ERL_NIF_TERM make_pid(ErlNifEnv* env, const ErlNifPid& pid) { return enif_make_pid(env, &pid); }
#pragma GCC diagnostic pop

}  // namespace ep
