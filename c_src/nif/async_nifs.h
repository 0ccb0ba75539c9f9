// NIF functions of spec §9: calls whose answer comes as a message
// (py:spawn_call, py:cast) and streams. Regular NIFs: they validate, copy
// and queue, like every request.
#pragma once

#include <erl_nif.h>

namespace ep {

ERL_NIF_TERM nif_spawn_call(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_cast(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_async_failed(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
// async_new() -> Ref: a call ref of the calling process whose answer an
// Erlang process sends (an isolated context's spawn_call).
ERL_NIF_TERM nif_async_new(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
// async_set_traceback(Ref, Traceback) -> ok: kept for py:last_traceback/0.
ERL_NIF_TERM nif_async_set_traceback(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_async_owner(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_async_traceback(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_async_cancel(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_stream_start(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_stream_ack(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_stream_cancel(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_stream_forward(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_stream_fail(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

}  // namespace ep
