// NIF functions for the asyncio event loop (py_event_loop, and
// py_nif:event_loop_exec/eval). Regular NIFs: they validate, copy and queue.
#pragma once

#include <erl_nif.h>

namespace ep {

ERL_NIF_TERM nif_event_loop_new(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_event_loop_stop(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_event_loop_info(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_event_loop_env_new(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_event_loop_submit(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_event_loop_code(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

}  // namespace ep
