// NIF functions for contexts, envs, requests and handles. All of them are
// regular NIFs that never touch Python: they validate, copy and enqueue.
#pragma once

#include <erl_nif.h>

#include <cstdint>
#include <memory>

namespace ep {

class Context;
struct Request;

// Queues `req` on `ctx` (which may be null): 0 once queued, with *id set;
// else the {error, Reason} to return (no_memory, context_not_running,
// overloaded).
ERL_NIF_TERM queue_request(ErlNifEnv* env, const std::shared_ptr<Context>& ctx, std::unique_ptr<Request> req,
                           std::uint64_t* id);

ERL_NIF_TERM nif_context_new(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_context_stop(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_context_info(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_env_new(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_exec(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_eval(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_call(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_handle_getattr(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_handle_call_method(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_handle_to_term(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_handle_buffer(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_context_exec(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_context_eval(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_cancel(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_context_interrupt(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM nif_is_handle(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

}  // namespace ep
