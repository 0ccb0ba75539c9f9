// One call from an Erlang process, on its way to a context thread, and how
// its answer goes back.
#pragma once

#include <erl_nif.h>

#include <array>
#include <cstdint>
#include <memory>

#include "erl/msg_env.h"

namespace ep {

class AsyncCall;
class Env;
class Handle;
class Stream;

enum class Op : std::uint8_t {
    Exec,         // args: Code
    Eval,         // args: Expr, Locals
    Call,         // args: Module, Function, Args, Kwargs
    GetAttr,      // args: Name               (on `target`)
    CallMethod,   // args: Name, Args, Kwargs (on `target`)
    ToTerm,       //                          (on `target`)
    Buffer,       // py:buffer                (on `target`)
    StreamStart,  // args as Call: the iterable to stream (of `stream`)
    StreamStep,   // the next items of `stream`
    StreamClose,  // `stream` was cancelled: close its iterator
};

// Who hears of the outcome, and how.
enum class ReplyTo : std::uint8_t {
    Waiter,    // {Tag, Result} (or {Tag, {error, R}, Traceback}): the caller waits in receive
    Response,  // {py_response, Ref, Result}: py:spawn_call; `tag` is the Ref
    Log,       // py:cast: nothing on success; a failure goes to logger
    Stream,    // the stream's owner, through `stream` (stream requests)
};

// What running a request came to. Terms are built in the request's env.
struct RunResult {
    enum Kind : std::uint8_t { Ok, Failure, PythonError };
    Kind kind = Ok;
    ERL_NIF_TERM value = 0;      // Ok: ok | {ok, V}; otherwise the error reason
    ERL_NIF_TERM traceback = 0;  // PythonError only
    bool interrupted = false;    // the Python error was our erlang.Interrupted
    bool deferred_maps = false;  // Ok: V holds maps the receiver builds (py_maps)
};

// Arguments are copies in the request's own environment, so they stay valid
// after the caller's NIF call returns; the answer is built in the same
// environment.
struct Request {
    Op op;
    ReplyTo reply_to = ReplyTo::Waiter;
    ErlNifPid caller;
    MsgEnv env;
    ERL_NIF_TERM tag = 0;
    std::array<ERL_NIF_TERM, 4> args{};
    std::shared_ptr<Env> ns;           // the namespace, for Exec/Eval/Call/StreamStart
    std::shared_ptr<Handle> target;    // the object, for handle operations
    std::shared_ptr<AsyncCall> call;   // ReplyTo::Response: the spawn_call's Ref
    std::shared_ptr<Stream> stream;    // stream requests
    // Set when the caller is running an Erlang function for erlang.call
    // number N: a context waiting for that call runs this request nested.
    std::uint64_t callback_parent = 0;
    // Its output went through py_relay (erlang._write): so does its answer,
    // which then comes after the text. Set on the thread running it.
    mutable bool printed = false;

    // Copies the tag and `argv` from `from` (the caller's env) and records
    // the calling process. False if the environment cannot be allocated.
    static std::unique_ptr<Request> make(ErlNifEnv* from, Op op, ERL_NIF_TERM tag, const ERL_NIF_TERM* argv,
                                         int argc);
    // A request a context makes for itself (the next step of a stream).
    static std::unique_ptr<Request> internal(Op op, std::shared_ptr<Stream> stream);

    // The outcome, to whoever hears of it (see ReplyTo). `caller_env` as
    // for MsgEnv::send: nullptr on a thread of ours.
    void answer(const RunResult& result, ErlNifEnv* caller_env = nullptr);
    // {error, Reason}, to whoever hears of it: a request that never ran.
    void fail(ERL_NIF_TERM reason, ErlNifEnv* caller_env = nullptr);

private:
    // msg to the caller: directly, or behind its output through py_relay.
    void deliver(ERL_NIF_TERM msg, ErlNifEnv* caller_env);
    // ReplyTo::Waiter: {Tag, Result} as it is.
    void reply(ERL_NIF_TERM result, ErlNifEnv* caller_env);
    void reply_python_error(ERL_NIF_TERM reason, ERL_NIF_TERM traceback);
    void send_response(ERL_NIF_TERM result, bool deferred_maps, ErlNifEnv* caller_env);
    void log_failure(ERL_NIF_TERM reason, ERL_NIF_TERM traceback, ErlNifEnv* caller_env);
};

}  // namespace ep
