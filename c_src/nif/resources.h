// The NIF resource types through which Erlang holds native objects. Each
// resource is a thin holder of a shared_ptr, so a request in flight keeps
// what it uses alive even after Erlang has dropped its reference.
#pragma once

#include <erl_nif.h>

#include <memory>

namespace ep {

class AsyncCall;
class Context;
class Env;
class EventLoop;
class Handle;
class Stream;

bool open_resource_types(ErlNifEnv* env);

// nullptr when `term` is not a resource of that type.
std::shared_ptr<Context> get_context(ErlNifEnv* env, ERL_NIF_TERM term);
std::shared_ptr<Env> get_env(ErlNifEnv* env, ERL_NIF_TERM term);
std::shared_ptr<Handle> get_handle(ErlNifEnv* env, ERL_NIF_TERM term);
std::shared_ptr<EventLoop> get_event_loop(ErlNifEnv* env, ERL_NIF_TERM term);
std::shared_ptr<Stream> get_stream(ErlNifEnv* env, ERL_NIF_TERM term);
std::shared_ptr<AsyncCall> get_async_call(ErlNifEnv* env, ERL_NIF_TERM term);
bool is_handle(ErlNifEnv* env, ERL_NIF_TERM term);

// Wraps a context and monitors `owner`: when the owner dies the context stops.
ERL_NIF_TERM make_context_term(ErlNifEnv* env, std::shared_ptr<Context> context, const ErlNifPid& owner);
// Wraps an event loop and monitors `owner`: when the owner dies the loop stops.
ERL_NIF_TERM make_event_loop_term(ErlNifEnv* env, std::shared_ptr<EventLoop> loop, const ErlNifPid& owner);
// Wraps a stream and monitors its owner: when the owner dies the stream is cancelled.
ERL_NIF_TERM make_stream_term(ErlNifEnv* env, std::shared_ptr<Stream> stream);
// A spawn_call's Ref.
ERL_NIF_TERM make_async_call_term(ErlNifEnv* env, std::shared_ptr<AsyncCall> call);
ERL_NIF_TERM make_env_term(ErlNifEnv* env, std::shared_ptr<Env> ns);
// Safe from context threads (resources may be made off-scheduler).
ERL_NIF_TERM make_handle_term(ErlNifEnv* env, std::shared_ptr<Handle> handle);

}  // namespace ep
