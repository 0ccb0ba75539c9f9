#include "nif/context_nifs.h"

#include <string>

#include "erl/atoms.h"
#include "context/context.h"
#include "context/env.h"
#include "event_loop/event_loop.h"
#include "erl/erl_terms.h"
#include "context/handle.h"
#include "runtime/python_runtime.h"
#include "context/request.h"
#include "nif/resources.h"

namespace ep {

ERL_NIF_TERM queue_request(ErlNifEnv* env, const std::shared_ptr<Context>& ctx, std::unique_ptr<Request> req,
                           std::uint64_t* id) {
    if (!req) return make_error(env, atoms::no_memory);
    if (!ctx) return make_error(env, atoms::context_not_running);
    Context::Queue::Push status;
    *id = ctx->submit(req, &status);
    if (*id != 0) return 0;
    return make_error(env, status == Context::Queue::Push::Full ? atoms::overloaded : atoms::context_not_running);
}

namespace {

ERL_NIF_TERM enqueue(ErlNifEnv* env, const std::shared_ptr<Context>& ctx, std::unique_ptr<Request> req) {
    std::uint64_t id = 0;
    ERL_NIF_TERM error = queue_request(env, ctx, std::move(req), &id);
    return error != 0 ? error : enif_make_uint64(env, id);
}

// A request on an env: {error, _} for a bad env, else enqueued on its context.
ERL_NIF_TERM enqueue_on_env(ErlNifEnv* env, Op op, const ERL_NIF_TERM argv[], int nargs) {
    auto ns = get_env(env, argv[0]);
    if (!ns) return badarg(env, atoms::handle);
    auto req = Request::make(env, op, argv[1], argv + 2, nargs);
    if (req) req->ns = ns;
    return enqueue(env, ns->context(), std::move(req));
}

ERL_NIF_TERM enqueue_on_handle(ErlNifEnv* env, Op op, const ERL_NIF_TERM argv[], int nargs) {
    auto handle = get_handle(env, argv[0]);
    if (!handle) return badarg(env, atoms::handle);
    auto req = Request::make(env, op, argv[1], argv + 2, nargs);
    if (req) req->target = handle;
    return enqueue(env, handle->context(), std::move(req));
}

bool get_map_size_t(ErlNifEnv* env, ERL_NIF_TERM map, const char* key, std::size_t* out) {
    ERL_NIF_TERM value;
    ErlNifUInt64 n;
    if (!enif_get_map_value(env, map, enif_make_atom(env, key), &value)) return true;  // absent: keep default
    if (!enif_get_uint64(env, value, &n)) return false;
    *out = static_cast<std::size_t>(n);
    return true;
}

// A request on a context, in an explicit env or (undefined) the context's
// shared namespace: context_exec/context_eval of py_nif.
ERL_NIF_TERM enqueue_on_context(ErlNifEnv* env, Op op, const ERL_NIF_TERM argv[], int nargs, ERL_NIF_TERM env_arg) {
    auto ctx = get_context(env, argv[0]);
    if (!ctx) return badarg(env, enif_make_atom(env, "context"));
    std::shared_ptr<Env> ns = env_arg == atoms::undefined ? ctx->shared_env() : get_env(env, env_arg);
    if (env_arg != atoms::undefined && !ns) return badarg(env, enif_make_atom(env, "env"));
    if (!ns || !ctx->running()) return make_error(env, atoms::context_not_running);
    // An env belongs to the interpreter that made it (spec §3).
    if (ns->interpreter() != ctx->interpreter()) return make_error(env, atoms::env_wrong_interpreter);
    auto req = Request::make(env, op, argv[1], argv + 2, nargs);
    if (req) req->ns = std::move(ns);
    return enqueue(env, ctx, std::move(req));
}

}  // namespace

// context_new(Mode, Opts, Tag) -> {ok, CtxRef} | {error, Reason}. The
// context thread later sends {Tag, ok | {error, Reason}} to the caller.
ERL_NIF_TERM nif_context_new(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ContextConfig config;
    if (argv[0] == atoms::worker) config.mode = Mode::Worker;
    else if (argv[0] == atoms::subinterp) config.mode = Mode::Subinterp;
    else if (argv[0] == atoms::owngil) config.mode = Mode::OwnGil;
    else return badarg(env, atoms::mode);
    if (!enif_is_map(env, argv[1])) return badarg(env, enif_make_atom(env, "options"));
    std::size_t spin = static_cast<std::size_t>(config.spin.count());
    if (!get_map_size_t(env, argv[1], "spin_us", &spin) ||
        !get_map_size_t(env, argv[1], "code_cache_size", &config.code_cache_size) ||
        !get_map_size_t(env, argv[1], "max_batch", &config.max_batch) || config.max_batch == 0 ||
        !get_map_size_t(env, argv[1], "max_queue", &config.max_queue) || config.max_queue == 0 ||
        spin > 100000)  // 100 ms: beyond that spinning is just burning a core
        return badarg(env, enif_make_atom(env, "options"));
    config.spin = std::chrono::microseconds(spin);
    auto ctx = std::make_shared<Context>(config);
    ErlNifPid self;
    enif_self(env, &self);
    std::string error;
    if (!ctx->start(Notify::make(env, argv[2]), &error)) return make_error(env, atoms::python_error, error);
    return make_ok(env, make_context_term(env, std::move(ctx), self));
}

// context_stop(CtxRef, Tag) -> ok (then {Tag, stopped} follows) | already_stopped
ERL_NIF_TERM nif_context_stop(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto ctx = get_context(env, argv[0]);
    if (!ctx) return badarg(env, atoms::handle);
    Notify done = Notify::make(env, argv[1]);
    return ctx->stop(env, &done) ? atoms::ok : atoms::already_stopped;
}

ERL_NIF_TERM nif_context_info(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto ctx = get_context(env, argv[0]);
    if (!ctx) return badarg(env, atoms::handle);
    ERL_NIF_TERM mode = ctx->mode() == Mode::Worker ? atoms::worker : ctx->mode() == Mode::Subinterp ? atoms::subinterp : atoms::owngil;
    auto interp = ctx->interpreter();
    ERL_NIF_TERM keys[] = {atoms::mode,
                           atoms::running,
                           atoms::queue_length,
                           atoms::requests,
                           atoms::interpreter_id,
                           enif_make_atom(env, "busy"),
                           enif_make_atom(env, "queue_peak"),
                           enif_make_atom(env, "max_queue"),
                           enif_make_atom(env, "refused")};
    ERL_NIF_TERM values[] = {mode,
                             ctx->running() ? atoms::true_ : atoms::false_,
                             enif_make_uint64(env, ctx->queue_length()),
                             enif_make_uint64(env, ctx->requests_served()),
                             interp ? enif_make_int64(env, interp->id()) : atoms::undefined,
                             ctx->busy() ? atoms::true_ : atoms::false_,
                             enif_make_uint64(env, ctx->queue_peak()),
                             enif_make_uint64(env, ctx->max_queue()),
                             enif_make_uint64(env, ctx->refused())};
    ERL_NIF_TERM map;
    enif_make_map_from_arrays(env, keys, values, sizeof keys / sizeof keys[0], &map);
    return map;
}

// env_new(CtxRef) -> {ok, EnvRef} | {error, context_not_running}
ERL_NIF_TERM nif_env_new(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto ctx = get_context(env, argv[0]);
    if (!ctx) return badarg(env, atoms::handle);
    auto interp = ctx->interpreter();
    if (!interp || !ctx->running()) return make_error(env, atoms::context_not_running);
    auto ns = std::make_shared<Env>(std::move(interp), ctx);
    ctx->register_env(ns);
    return make_ok(env, make_env_term(env, std::move(ns)));
}

// exec(EnvRef, Tag, Code) -> Id | {error, Reason}
ERL_NIF_TERM nif_exec(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    if (!enif_is_binary(env, argv[2])) return badarg(env, atoms::code);
    return enqueue_on_env(env, Op::Exec, argv, 1);
}

// eval(EnvRef, Tag, Expr, Locals) -> Id | {error, Reason}
ERL_NIF_TERM nif_eval(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    if (!enif_is_binary(env, argv[2])) return badarg(env, atoms::expr);
    if (!enif_is_map(env, argv[3])) return badarg(env, atoms::locals);
    return enqueue_on_env(env, Op::Eval, argv, 2);
}

// call(EnvRef, Tag, Module, Function, Args, Kwargs) -> Id | {error, Reason}
ERL_NIF_TERM nif_call(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    if (!is_name(env, argv[2])) return badarg(env, atoms::module);
    if (!is_name(env, argv[3])) return badarg(env, atoms::function);
    if (!is_proper_list(env, argv[4])) return badarg(env, atoms::args);
    if (!enif_is_map(env, argv[5])) return badarg(env, atoms::kwargs);
    return enqueue_on_env(env, Op::Call, argv, 4);
}

// handle_getattr(Handle, Tag, Name) -> Id | {error, Reason}
ERL_NIF_TERM nif_handle_getattr(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    if (!is_name(env, argv[2])) return badarg(env, atoms::name);
    return enqueue_on_handle(env, Op::GetAttr, argv, 1);
}

// handle_call_method(Handle, Tag, Name, Args, Kwargs) -> Id | {error, Reason}
ERL_NIF_TERM nif_handle_call_method(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    if (!is_name(env, argv[2])) return badarg(env, atoms::name);
    if (!is_proper_list(env, argv[3])) return badarg(env, atoms::args);
    if (!enif_is_map(env, argv[4])) return badarg(env, atoms::kwargs);
    return enqueue_on_handle(env, Op::CallMethod, argv, 3);
}

// handle_to_term(Handle, Tag) -> Id | {error, Reason}
ERL_NIF_TERM nif_handle_to_term(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return enqueue_on_handle(env, Op::ToTerm, argv, 0);
}

// handle_buffer(Handle, Tag) -> Id | {error, Reason}
ERL_NIF_TERM nif_handle_buffer(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return enqueue_on_handle(env, Op::Buffer, argv, 0);
}

// context_exec(CtxRef, Tag, Code, Env | undefined) -> Id | {error, Reason}
ERL_NIF_TERM nif_context_exec(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    if (!enif_is_binary(env, argv[2])) return badarg(env, atoms::code);
    return enqueue_on_context(env, Op::Exec, argv, 1, argv[3]);
}

// context_eval(CtxRef, Tag, Expr, Locals, Env | undefined) -> Id | {error, Reason}
ERL_NIF_TERM nif_context_eval(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    if (!enif_is_binary(env, argv[2])) return badarg(env, atoms::expr);
    if (!enif_is_map(env, argv[3])) return badarg(env, atoms::locals);
    return enqueue_on_context(env, Op::Eval, argv, 2, argv[4]);
}

// cancel(EnvRef | Handle | CtxRef | LoopRef, Id) -> cancelled | finished
ERL_NIF_TERM nif_cancel(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ErlNifUInt64 id;
    if (!enif_get_uint64(env, argv[1], &id)) return badarg(env, enif_make_atom(env, "id"));
    if (auto loop = get_event_loop(env, argv[0]))
        return loop->cancel(id) == EventLoop::Cancel::Finished ? atoms::finished : atoms::cancelled;
    std::shared_ptr<Context> ctx;
    if (auto ns = get_env(env, argv[0])) ctx = ns->context();
    else if (auto handle = get_handle(env, argv[0])) ctx = handle->context();
    else if (auto direct = get_context(env, argv[0])) ctx = direct;
    else return badarg(env, atoms::handle);
    // A context that is gone answered everything it had before it went.
    if (!ctx) return atoms::finished;
    return ctx->cancel(id) == Context::Queue::Cancel::NotFound ? atoms::finished : atoms::cancelled;
}

// context_interrupt(CtxRef) -> ok | not_running | {error, context_not_running}
ERL_NIF_TERM nif_context_interrupt(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto ctx = get_context(env, argv[0]);
    if (!ctx) return badarg(env, enif_make_atom(env, "context"));
    if (!ctx->running()) return make_error(env, atoms::context_not_running);
    return ctx->interrupt_running() ? atoms::ok : atoms::not_running;
}

ERL_NIF_TERM nif_is_handle(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return is_handle(env, argv[0]) ? atoms::true_ : atoms::false_;
}

}  // namespace ep
