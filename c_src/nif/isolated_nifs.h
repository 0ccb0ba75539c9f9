// NIF functions that isolated contexts (spec §11) use from the VM side.
// Python runs in another OS process there, so these touch no Python: they
// give Erlang what it lacks for talking to that process safely.
#pragma once

#include <erl_nif.h>

namespace ep {

bool open_release_token_type(ErlNifEnv* env);

// Whether term is a release token: an isolated context's env or handle,
// which no in-process interpreter can take.
bool is_release_token(ErlNifEnv* env, ERL_NIF_TERM term);

// release_token(Pid, Msg): a resource that sends Msg to Pid once the VM has
// garbage-collected every copy of it. An isolated env or handle holds one,
// so the object in the worker lives exactly as long as Erlang holds it.
ERL_NIF_TERM nif_release_token(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// release_token_info(Term): {Pid, Msg} of a release token, or error.
ERL_NIF_TERM nif_release_token_info(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// encode_request(Term): term_to_binary(Term), under the same size rule as
// every in-process request (sized_request: dirty past 512 KB, refused past
// 1 GiB), so a shared term that expands to gigabytes is refused, not built.
ERL_NIF_TERM nif_encode_request(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// atoms_from_python(Names): makes the atoms named by the UTF-8 binaries
// Names (an isolated worker's answer uses them) within the one budget of
// new atoms made for Python (convert/atom_budget.h): ok, or
// {error, {badarg, Text}} once it is spent (the atoms made so far stay).
ERL_NIF_TERM nif_atoms_from_python(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

}  // namespace ep
