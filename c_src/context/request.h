// One call from an Erlang process, on its way to a context thread.
#pragma once

#include <erl_nif.h>

#include <array>
#include <cstdint>
#include <memory>

#include "erl/msg_env.h"
#include "runtime/py_errors.h"

namespace ep {

class Env;
class Handle;

enum class Op : std::uint8_t {
    Exec,        // args: Code
    Eval,        // args: Expr, Locals
    Call,        // args: Module, Function, Args, Kwargs
    GetAttr,     // args: Name               (on `target`)
    CallMethod,  // args: Name, Args, Kwargs (on `target`)
    ToTerm,      //                          (on `target`)
};

// Arguments are copies in the request's own environment, so they stay valid
// after the caller's NIF call returns; the reply is built in the same
// environment and sent as {Tag, Result}, or {Tag, {error, Reason}, Traceback}
// for a Python exception.
struct Request {
    Op op;
    ErlNifPid caller;
    MsgEnv env;
    ERL_NIF_TERM tag = 0;
    std::array<ERL_NIF_TERM, 4> args{};
    std::shared_ptr<Env> ns;         // the namespace, for Exec/Eval/Call
    std::shared_ptr<Handle> target;  // the object, for handle operations
    // Set when the caller is running an Erlang function for erlang.call
    // number N: a context waiting for that call runs this request nested.
    std::uint64_t callback_parent = 0;

    // Copies the tag and `argv` from `from` (the caller's env) and records
    // the calling process. False if the environment cannot be allocated.
    static std::unique_ptr<Request> make(ErlNifEnv* from, Op op, ERL_NIF_TERM tag, const ERL_NIF_TERM* argv,
                                         int argc);

    // `caller_env` as for MsgEnv::send: nullptr on a context thread.
    void reply(ERL_NIF_TERM result, ErlNifEnv* caller_env = nullptr);
    void reply_python_error(ERL_NIF_TERM reason, ERL_NIF_TERM traceback);
};

}  // namespace ep
