#include "context/request.h"

#include "erl/atoms.h"
#include "erlang_module/callbacks.h"
#include "context/env.h"
#include "erl/erl_terms.h"
#include "context/handle.h"

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

void Request::reply(ERL_NIF_TERM result, ErlNifEnv* caller_env) {
    env.send(caller, enif_make_tuple2(env.get(), tag, result), caller_env);
}

void Request::reply_python_error(ERL_NIF_TERM reason, ERL_NIF_TERM traceback) {
    env.send(caller, enif_make_tuple3(env.get(), tag, make_error(env.get(), reason), traceback));
}

}  // namespace ep
