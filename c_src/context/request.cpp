#include "context/request.h"

#include "context/async_call.h"
#include "context/env.h"
#include "context/handle.h"
#include "context/stream.h"
#include "erl/atoms.h"
#include "erl/erl_terms.h"
#include "erlang_module/callbacks.h"
#include "erlang_module/python_logging.h"

namespace ep {

std::unique_ptr<Request> Request::make(ErlNifEnv* from, Op op, ERL_NIF_TERM tag, const ERL_NIF_TERM* argv, int argc) {
    auto req = std::make_unique<Request>();
    if (!req->env) return nullptr;
    req->op = op;
    enif_self(from, &req->caller);
    req->callback_parent = callback_run_by(req->caller);
    req->tag = req->env.copy(tag);
    for (int i = 0; i < argc && i < static_cast<int>(req->args.size()); ++i) req->args[static_cast<size_t>(i)] = req->env.copy(argv[i]);
    return req;
}

std::unique_ptr<Request> Request::internal(Op op, std::shared_ptr<Stream> stream) {
    auto req = std::make_unique<Request>();
    if (!req->env) return nullptr;
    req->op = op;
    req->reply_to = ReplyTo::Stream;
    req->caller = stream->owner();
    // Started from inside an Erlang function that Python waits for: its
    // steps run nested there too, or the wait would never end.
    req->callback_parent = stream->callback_parent();
    req->stream = std::move(stream);
    return req;
}

void Request::deliver(ERL_NIF_TERM msg, ErlNifEnv* caller_env) {
    ErlNifPid relay;
    // py_relay gone: straight to the caller, as if nothing had printed
    if (printed && enif_whereis_pid(caller_env, atoms::py_relay, &relay) &&
        env.try_send(relay, enif_make_tuple3(env.get(), atoms::py_forward_tag, make_pid(env.get(), caller), msg),
                     caller_env))
        return;
    env.send(caller, msg, caller_env);
}

void Request::reply(ERL_NIF_TERM result, ErlNifEnv* caller_env) {
    deliver(enif_make_tuple2(env.get(), tag, result), caller_env);
}

void Request::reply_python_error(ERL_NIF_TERM reason, ERL_NIF_TERM traceback) {
    deliver(enif_make_tuple3(env.get(), tag, make_error(env.get(), reason), traceback), nullptr);
}

void Request::answer(const RunResult& result, ErlNifEnv* caller_env) {
    ErlNifEnv* e = env.get();
    switch (reply_to) {
    case ReplyTo::Waiter:
        if (result.kind == RunResult::PythonError) reply_python_error(result.value, result.traceback);
        else if (result.kind == RunResult::Failure) reply(make_error(e, result.value), caller_env);
        else reply(result.deferred_maps ? enif_make_tuple2(e, atoms::deferred_maps, result.value) : result.value,
                   caller_env);
        return;
    case ReplyTo::Response:
        if (result.kind == RunResult::PythonError && call) call->set_traceback(result.traceback);
        send_response(result.kind == RunResult::Ok ? result.value : make_error(e, result.value), result.deferred_maps,
                      caller_env);
        return;
    case ReplyTo::Log:
        if (result.kind != RunResult::Ok)
            log_failure(result.value, result.kind == RunResult::PythonError ? result.traceback : 0, caller_env);
        return;
    case ReplyTo::Stream:
        // A stream sends its own items; only how it failed is left to say.
        if (result.kind != RunResult::Ok && stream) stream->end_with_error(e, result.value, caller_env);
        return;
    }
}

void Request::fail(ERL_NIF_TERM reason, ErlNifEnv* caller_env) {
    answer(RunResult{RunResult::Failure, reason}, caller_env);
}

void Request::send_response(ERL_NIF_TERM result, bool deferred_maps, ErlNifEnv* caller_env) {
    ErlNifEnv* e = env.get();
    if (deferred_maps || printed) {
        // Maps only a scheduler may build, or output to write first:
        // py_relay builds them and sends the response on.
        ErlNifPid relay;
        if (enif_whereis_pid(caller_env, atoms::py_relay, &relay) &&
            env.try_send(relay, enif_make_tuple4(e, atoms::py_response_relay_tag, make_pid(e, caller), tag, result),
                         caller_env))
            return;
        // Without it, maps past 128 keys cannot be built here; anything
        // else goes straight to the caller.
        if (deferred_maps) result = make_error(e, atoms::relay_not_running);
    }
    env.send(caller, enif_make_tuple3(e, atoms::py_response, tag, result), caller_env);
}

void Request::log_failure(ERL_NIF_TERM reason, ERL_NIF_TERM traceback, ErlNifEnv* caller_env) {
    ErlNifEnv* e = env.get();
    char head[512];
    // args: Module, Function (as for Call)
    enif_snprintf(head, sizeof head, "py:cast of %T:%T failed: %T", args[0], args[1], reason);
    ErlNifBinary tb;
    std::string text = head;
    if (traceback != 0 && enif_inspect_binary(e, traceback, &tb)) {
        text += "\n";
        text.append(reinterpret_cast<const char*>(tb.data), tb.size);
    }
    send_log_record(env, kLogError, make_binary(e, "erlang_python.cast"), make_binary(e, text), make_pid(e, caller),
                    caller_env);
}

}  // namespace ep
