// Python object -> Erlang term (spec §5, Python to Erlang).
#pragma once

#include <cstddef>
#include <vector>

#include "convert/convert.h"

namespace ep {

enum class Unwrap {
    No,         // the standard rules: objects with no Erlang form become handles
    TopLevel,   // py:to_term/1: also turn sets, views, ranges and the like at the top into lists
};

// Dicts with more keys than this are not built as maps on a context thread:
// OTP 25's map construction sorts with erts_qsort, which past 128 elements
// reads scheduler-only data and crashes any other thread (seen here; cf.
// erlang/otp#8208). They travel as {MapMarker, [{K, V}]} and the receiving
// process builds them (py_maps:finish/1).
constexpr std::size_t kDirectMapKeys = 128;

// A result larger than this (in words, about 1 GiB) is refused with
// {error, {result_too_large, Bytes}}: running out of memory ends the VM.
constexpr std::size_t kMaxResultWords = std::size_t{128} << 20;

// Converts `obj` into a term built in `env`. False with *out set to an error
// reason ({Type, Message} of a Python error, or nesting_too_deep). GIL held.
// `deferred_maps` is set when the term holds dicts larger than kDirectMapKeys.
bool py_to_term(PyObject* obj, ErlNifEnv* env, const ConvertScope& scope, ERL_NIF_TERM* out,
                bool* deferred_maps, Unwrap unwrap = Unwrap::No);

// The index of a key identical (=:=) to an earlier one, or keys.size().
std::size_t find_duplicate_key(const std::vector<ERL_NIF_TERM>& keys);

// The marker of deferred maps: a reference made at load time, which Python
// code cannot forge. Call init on a scheduler (load), then copy freely.
void init_map_marker(ErlNifEnv* load_env);
ERL_NIF_TERM map_marker(ErlNifEnv* env);

}  // namespace ep
