#include "nif/resources.h"

#include <new>

#include "context/async_call.h"
#include "context/context.h"
#include "context/env.h"
#include "context/stream.h"
#include "event_loop/event_loop.h"
#include "context/handle.h"
#include "erl/resource_type.h"

namespace ep {
namespace {

template <class T>
struct Holder {
    std::shared_ptr<T> ptr;
};

ErlNifResourceType* context_type = nullptr;
ErlNifResourceType* env_type = nullptr;
ErlNifResourceType* handle_type = nullptr;
ErlNifResourceType* loop_type = nullptr;
ErlNifResourceType* stream_type = nullptr;
ErlNifResourceType* call_type = nullptr;

template <class T>
void holder_dtor(ErlNifEnv*, void* obj) {
    static_cast<Holder<T>*>(obj)->~Holder<T>();
}

// The context object's Erlang side is gone (or its owner died): stop it.
// Stopping only signals the context thread; it never blocks the scheduler.
void stop_quietly(ErlNifEnv* env, Context& ctx) noexcept {
    try {
        ctx.stop(env);
    } catch (...) {
        // Out of memory in a VM callback: nothing more can be done here.
    }
}

void stop_quietly(ErlNifEnv* env, EventLoop& loop) noexcept {
    try {
        loop.stop(env);
    } catch (...) {
    }
}

// A stream's owner died: no more messages, and its iterator is closed on
// its context's thread.
void stop_quietly(ErlNifEnv*, Stream& stream) noexcept {
    try {
        if (stream.cancel()) stream.close_on_context();
    } catch (...) {
    }
}

// Contexts and loops stop when their Erlang side is gone or its owner dies.
template <class T>
void stopping_dtor(ErlNifEnv* env, void* obj) {
    auto* holder = static_cast<Holder<T>*>(obj);
    if (holder->ptr) stop_quietly(env, *holder->ptr);
    holder->~Holder<T>();
}

template <class T>
void owner_down(ErlNifEnv* env, void* obj, ErlNifPid*, ErlNifMonitor*) {
    auto* holder = static_cast<Holder<T>*>(obj);
    if (holder->ptr) stop_quietly(env, *holder->ptr);
}

template <class T>
std::shared_ptr<T> get(ErlNifEnv* env, ERL_NIF_TERM term, ErlNifResourceType* type) {
    void* obj = nullptr;
    if (!enif_get_resource(env, term, type, &obj)) return nullptr;
    return static_cast<Holder<T>*>(obj)->ptr;
}

template <class T>
ERL_NIF_TERM make(ErlNifEnv* env, ErlNifResourceType* type, std::shared_ptr<T> ptr, void** raw = nullptr) {
    void* obj = enif_alloc_resource(type, sizeof(Holder<T>));
    new (obj) Holder<T>{std::move(ptr)};
    ERL_NIF_TERM term = enif_make_resource(env, obj);
    if (raw) *raw = obj;
    enif_release_resource(obj);
    return term;
}

}  // namespace

bool open_resource_types(ErlNifEnv* env) {
    context_type = open_resource_type(env, "py_context", stopping_dtor<Context>, owner_down<Context>);
    env_type = open_resource_type(env, "py_env", holder_dtor<Env>);
    handle_type = open_resource_type(env, "py_object", holder_dtor<Handle>);
    loop_type = open_resource_type(env, "py_event_loop", stopping_dtor<EventLoop>, owner_down<EventLoop>);
    // A running stream holds its own Ref: dropping the others changes nothing.
    stream_type = open_resource_type(env, "py_stream", holder_dtor<Stream>, owner_down<Stream>);
    call_type = open_resource_type(env, "py_call", holder_dtor<AsyncCall>);
    return context_type && env_type && handle_type && loop_type && stream_type && call_type;
}

std::shared_ptr<Context> get_context(ErlNifEnv* env, ERL_NIF_TERM term) { return get<Context>(env, term, context_type); }
std::shared_ptr<Env> get_env(ErlNifEnv* env, ERL_NIF_TERM term) { return get<Env>(env, term, env_type); }
std::shared_ptr<Handle> get_handle(ErlNifEnv* env, ERL_NIF_TERM term) { return get<Handle>(env, term, handle_type); }
std::shared_ptr<EventLoop> get_event_loop(ErlNifEnv* env, ERL_NIF_TERM term) {
    return get<EventLoop>(env, term, loop_type);
}

std::shared_ptr<Stream> get_stream(ErlNifEnv* env, ERL_NIF_TERM term) { return get<Stream>(env, term, stream_type); }
std::shared_ptr<AsyncCall> get_async_call(ErlNifEnv* env, ERL_NIF_TERM term) {
    return get<AsyncCall>(env, term, call_type);
}

bool is_handle(ErlNifEnv* env, ERL_NIF_TERM term) {
    void* obj = nullptr;
    return enif_get_resource(env, term, handle_type, &obj) != 0;
}

template <class T>
ERL_NIF_TERM make_owned(ErlNifEnv* env, ErlNifResourceType* type, std::shared_ptr<T> ptr, const ErlNifPid& owner) {
    void* raw = nullptr;
    ERL_NIF_TERM term = make(env, type, std::move(ptr), &raw);
    ErlNifPid pid = owner;
    if (enif_monitor_process(env, raw, &pid, nullptr) > 0) {
        // The owner is already dead: there is nobody to serve.
        stop_quietly(env, *static_cast<Holder<T>*>(raw)->ptr);
    }
    return term;
}

ERL_NIF_TERM make_context_term(ErlNifEnv* env, std::shared_ptr<Context> context, const ErlNifPid& owner) {
    return make_owned(env, context_type, std::move(context), owner);
}

ERL_NIF_TERM make_event_loop_term(ErlNifEnv* env, std::shared_ptr<EventLoop> loop, const ErlNifPid& owner) {
    return make_owned(env, loop_type, std::move(loop), owner);
}

ERL_NIF_TERM make_stream_term(ErlNifEnv* env, std::shared_ptr<Stream> stream) {
    ErlNifPid owner = stream->owner();
    return make_owned(env, stream_type, std::move(stream), owner);
}

ERL_NIF_TERM make_async_call_term(ErlNifEnv* env, std::shared_ptr<AsyncCall> call) {
    return make(env, call_type, std::move(call));
}

ERL_NIF_TERM make_env_term(ErlNifEnv* env, std::shared_ptr<Env> ns) { return make(env, env_type, std::move(ns)); }

ERL_NIF_TERM make_handle_term(ErlNifEnv* env, std::shared_ptr<Handle> handle) {
    return make(env, handle_type, std::move(handle));
}

}  // namespace ep
