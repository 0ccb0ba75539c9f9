#include "nif/async_nifs.h"

#include "context/async_call.h"
#include "context/context.h"
#include "context/env.h"
#include "context/request.h"
#include "context/stream.h"
#include "erl/atoms.h"
#include "erl/erl_terms.h"
#include "nif/context_nifs.h"
#include "nif/resources.h"

namespace ep {
namespace {

// Module, Function, Args, Kwargs at argv[first..]: the checks of a call.
ERL_NIF_TERM check_call_args(ErlNifEnv* env, const ERL_NIF_TERM argv[], int first) {
    if (!is_name(env, argv[first])) return badarg(env, atoms::module);
    if (!is_name(env, argv[first + 1])) return badarg(env, atoms::function);
    if (!is_proper_list(env, argv[first + 2])) return badarg(env, atoms::args);
    if (!enif_is_map(env, argv[first + 3])) return badarg(env, atoms::kwargs);
    return 0;
}

}  // namespace

// spawn_call(Env, Module, Function, Args, Kwargs) -> Ref | {error, Reason}.
// The answer comes as {py_response, Ref, Result}.
ERL_NIF_TERM nif_spawn_call(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto ns = get_env(env, argv[0]);
    if (!ns) return badarg(env, atoms::handle);
    if (ERL_NIF_TERM bad = check_call_args(env, argv, 1)) return bad;
    ErlNifPid self;
    enif_self(env, &self);
    auto ctx = ns->context();
    auto call = std::make_shared<AsyncCall>(self, ctx);
    ERL_NIF_TERM ref = make_async_call_term(env, call);
    auto req = Request::make(env, Op::Call, ref, argv + 1, 4);
    if (req) {
        req->ns = std::move(ns);
        req->reply_to = ReplyTo::Response;
        req->call = call;
    }
    std::uint64_t id = 0;
    if (ERL_NIF_TERM error = queue_request(env, ctx, std::move(req), &id)) return error;
    call->set_request_id(id);
    return ref;
}

// cast(Env, Module, Function, Args, Kwargs) -> ok | {error, Reason}
ERL_NIF_TERM nif_cast(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto ns = get_env(env, argv[0]);
    if (!ns) return badarg(env, atoms::handle);
    if (ERL_NIF_TERM bad = check_call_args(env, argv, 1)) return bad;
    auto ctx = ns->context();
    auto req = Request::make(env, Op::Call, atoms::undefined, argv + 1, 4);
    if (req) {
        req->ns = std::move(ns);
        req->reply_to = ReplyTo::Log;
    }
    std::uint64_t id = 0;
    ERL_NIF_TERM error = queue_request(env, ctx, std::move(req), &id);
    return error != 0 ? error : atoms::ok;
}

// async_failed(Reason) -> Ref: a spawn_call refused before it was queued
// still answers through its Ref, {py_response, Ref, {error, Reason}}.
ERL_NIF_TERM nif_async_failed(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ErlNifPid self;
    enif_self(env, &self);
    ERL_NIF_TERM ref = make_async_call_term(env, std::make_shared<AsyncCall>(self, std::weak_ptr<Context>()));
    MsgEnv msg;
    msg.send(self, enif_make_tuple3(msg.get(), atoms::py_response, msg.copy(ref), make_error(msg.get(), msg.copy(argv[0]))),
             env);
    return ref;
}

ERL_NIF_TERM nif_async_new(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
    ErlNifPid self;
    enif_self(env, &self);
    return make_async_call_term(env, std::make_shared<AsyncCall>(self, std::weak_ptr<Context>()));
}

ERL_NIF_TERM nif_async_set_traceback(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto call = get_async_call(env, argv[0]);
    if (!call) return badarg(env, enif_make_atom(env, "ref"));
    if (!enif_is_binary(env, argv[1])) return badarg(env, enif_make_atom(env, "traceback"));
    call->set_traceback(argv[1]);
    return atoms::ok;
}

// async_owner(Ref) -> {ok, Pid} | {error, {badarg, ref}}
ERL_NIF_TERM nif_async_owner(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto call = get_async_call(env, argv[0]);
    if (!call) return badarg(env, enif_make_atom(env, "ref"));
    return make_ok(env, make_pid(env, call->owner()));
}

// async_traceback(Ref) -> Traceback | undefined
ERL_NIF_TERM nif_async_traceback(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto call = get_async_call(env, argv[0]);
    ERL_NIF_TERM tb;
    return call && call->traceback(env, &tb) ? tb : atoms::undefined;
}

// async_cancel(Ref) -> cancelled (no answer will come) | finished (it is
// in the mailbox or on its way) | {error, {badarg, ref}}
ERL_NIF_TERM nif_async_cancel(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto call = get_async_call(env, argv[0]);
    if (!call) return badarg(env, enif_make_atom(env, "ref"));
    auto ctx = call->context();
    std::uint64_t id = call->request_id();
    if (!ctx || id == 0) return atoms::finished;
    return ctx->cancel(id) == Context::Queue::Cancel::NotFound ? atoms::finished : atoms::cancelled;
}

// stream_start(Env, Owner, Window, Module, Function, Args, Kwargs) ->
// {ok, Ref} | {error, Reason}. Window 0: no limit.
ERL_NIF_TERM nif_stream_start(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto ns = get_env(env, argv[0]);
    if (!ns) return badarg(env, atoms::handle);
    ErlNifPid owner;
    if (!enif_get_local_pid(env, argv[1], &owner)) return badarg(env, enif_make_atom(env, "owner"));
    ErlNifUInt64 window;
    if (!enif_get_uint64(env, argv[2], &window)) return badarg(env, enif_make_atom(env, "window"));
    if (ERL_NIF_TERM bad = check_call_args(env, argv, 3)) return bad;
    auto ctx = ns->context();
    if (!ctx || !ctx->running()) return make_error(env, atoms::context_not_running);
    auto stream = std::make_shared<Stream>(owner, static_cast<std::size_t>(window), ns->interpreter(), ctx);
    ERL_NIF_TERM ref = make_stream_term(env, stream);
    stream->set_ref(ref);
    auto req = Request::make(env, Op::StreamStart, ref, argv + 3, 4);
    if (req) {
        req->ns = std::move(ns);
        req->reply_to = ReplyTo::Stream;
        req->stream = stream;
        stream->set_callback_parent(req->callback_parent);
        stream->hold_env(req->ns);
    }
    ctx->register_stream(stream);  // before it can run: a stop then finds it
    std::uint64_t id = 0;
    if (ERL_NIF_TERM error = queue_request(env, ctx, std::move(req), &id)) {
        stream->cancel();  // never started: nothing to close, and it lets go of its Ref
        return error;
    }
    return make_ok(env, ref);
}

// stream_ack(Ref, N) -> ok | {error, {badarg, ref | count}}
ERL_NIF_TERM nif_stream_ack(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto stream = get_stream(env, argv[0]);
    if (!stream) return badarg(env, enif_make_atom(env, "ref"));
    ErlNifUInt64 n;
    if (!enif_get_uint64(env, argv[1], &n) || n == 0) return badarg(env, enif_make_atom(env, "count"));
    if (stream->ack(static_cast<std::size_t>(n))) {
        auto ctx = stream->context();
        if (!ctx || !ctx->submit_internal(Request::internal(Op::StreamStep, stream))) {
            MsgEnv msg;
            stream->end_with_error(msg.get(), atoms::context_stopped, env);
        }
    }
    return atoms::ok;
}

// stream_cancel(Ref) -> ok | {error, {badarg, ref}}. No message of the
// stream is sent once this returns.
ERL_NIF_TERM nif_stream_cancel(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto stream = get_stream(env, argv[0]);
    if (!stream) return badarg(env, enif_make_atom(env, "ref"));
    if (stream->cancel()) stream->close_on_context();  // its iterator, on its own thread
    return atoms::ok;
}

// stream_fail(Ref, Reason): ends the stream with {error, Reason} (a relayed
// message whose maps py_relay could not build) and closes its iterator.
ERL_NIF_TERM nif_stream_fail(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto stream = get_stream(env, argv[0]);
    if (!stream) return badarg(env, enif_make_atom(env, "ref"));
    MsgEnv msg;
    stream->end_with_error(msg.get(), msg.copy(argv[1]), env);
    stream->close_on_context();
    return atoms::ok;
}

// stream_forward(Ref, Message): py_relay built the maps of a message
// the stream relayed through it; passed on unless the stream was cancelled.
ERL_NIF_TERM nif_stream_forward(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto stream = get_stream(env, argv[0]);
    if (!stream) return badarg(env, enif_make_atom(env, "ref"));
    MsgEnv msg;
    stream->forward(msg.get(), msg.copy(argv[1]), env);
    return atoms::ok;
}

}  // namespace ep
