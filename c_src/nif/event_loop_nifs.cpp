#include "nif/event_loop_nifs.h"

#include <string>

#include "erl/atoms.h"
#include "context/env.h"
#include "erl/erl_terms.h"
#include "event_loop/event_loop.h"
#include "runtime/python_runtime.h"
#include "nif/resources.h"

namespace ep {
namespace {

ERL_NIF_TERM enqueue(ErlNifEnv* env, EventLoop& loop, std::unique_ptr<LoopJob> job) {
    std::uint64_t id = loop.submit(std::move(job));
    if (id == 0) return make_error(env, atoms::event_loop_not_running);
    return enif_make_uint64(env, id);
}

std::unique_ptr<LoopJob> make_job(ErlNifEnv* env, LoopOp op, Op req_op, ERL_NIF_TERM tag, const ERL_NIF_TERM* args,
                                  int nargs) {
    auto job = std::make_unique<LoopJob>();
    job->op = op;
    job->req = Request::make(env, req_op, tag, args, nargs);
    if (!job->req) return nullptr;
    return job;
}

}  // namespace

// event_loop_new(Tag) -> {ok, LoopRef} | {error, Reason}. The loop thread
// then sends {Tag, ok | {error, Reason}}. The caller owns the loop: when it
// dies, the loop stops.
ERL_NIF_TERM nif_event_loop_new(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto loop = std::make_shared<EventLoop>();
    ErlNifPid self;
    enif_self(env, &self);
    std::string error;
    if (!loop->start(Notify::make(env, argv[0]), self, &error)) return make_error(env, atoms::python_error, error);
    return make_ok(env, make_event_loop_term(env, std::move(loop), self));
}

// event_loop_stop(LoopRef) -> ok | already_stopped
ERL_NIF_TERM nif_event_loop_stop(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto loop = get_event_loop(env, argv[0]);
    if (!loop) return badarg(env, enif_make_atom(env, "loop"));
    return loop->stop(env) ? atoms::ok : atoms::already_stopped;
}

// event_loop_info(LoopRef) -> #{running, queue_length, tasks_awaited, jobs_done, loops_alive, thread_id}
ERL_NIF_TERM nif_event_loop_info(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto loop = get_event_loop(env, argv[0]);
    if (!loop) return badarg(env, enif_make_atom(env, "loop"));
    ERL_NIF_TERM keys[] = {atoms::running, atoms::queue_length, enif_make_atom(env, "tasks_awaited"),
                           enif_make_atom(env, "jobs_done"), enif_make_atom(env, "loops_alive"), atoms::thread_id};
    ERL_NIF_TERM values[] = {loop->running() ? atoms::true_ : atoms::false_, enif_make_uint64(env, loop->queue_length()),
                             enif_make_uint64(env, loop->tasks_awaited()), enif_make_uint64(env, loop->jobs_done()),
                             enif_make_uint64(env, EventLoop::alive()), enif_make_long(env, loop->thread_id())};
    ERL_NIF_TERM map;
    enif_make_map_from_arrays(env, keys, values, sizeof keys / sizeof keys[0], &map);
    return map;
}

// event_loop_env_new() -> EnvRef: a namespace in the main interpreter that
// belongs to no context, for a process's event-loop code.
ERL_NIF_TERM nif_event_loop_env_new(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
    return make_env_term(env, std::make_shared<Env>(main_interpreter(), std::weak_ptr<Context>()));
}

// event_loop_submit(LoopRef, Tag, task | spawn, Lookup, Module, Function, Args, Kwargs)
//   -> Id | {error, Reason}
// Lookup: the envs '__main__' names are looked up in, in order.
ERL_NIF_TERM nif_event_loop_submit(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto loop = get_event_loop(env, argv[0]);
    if (!loop) return badarg(env, enif_make_atom(env, "loop"));
    LoopOp op;
    if (argv[2] == atoms::task) op = LoopOp::Task;
    else if (argv[2] == atoms::spawn) op = LoopOp::Spawn;
    else return badarg(env, enif_make_atom(env, "op"));
    if (!is_name(env, argv[4])) return badarg(env, atoms::module);
    if (!is_name(env, argv[5])) return badarg(env, atoms::function);
    if (!is_proper_list(env, argv[6])) return badarg(env, atoms::args);
    if (!enif_is_map(env, argv[7])) return badarg(env, atoms::kwargs);
    auto job = make_job(env, op, Op::Call, argv[1], argv + 4, 4);
    if (!job) return make_error(env, atoms::no_memory);
    const auto& main = main_interpreter();
    ERL_NIF_TERM list = argv[3], head;
    while (enif_get_list_cell(env, list, &head, &list)) {
        auto ns = get_env(env, head);
        if (!ns) return badarg(env, enif_make_atom(env, "env"));
        // The loop runs in the main interpreter: envs of subinterpreters
        // cannot be looked into there (spec §3).
        if (ns->interpreter() == main) job->lookup.push_back(std::move(ns));
        else job->foreign_env = true;
    }
    return enqueue(env, *loop, std::move(job));
}

// event_loop_code(LoopRef, Tag, EnvRef, exec | eval, Code, Locals) -> Id | {error, Reason}
ERL_NIF_TERM nif_event_loop_code(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    auto loop = get_event_loop(env, argv[0]);
    if (!loop) return badarg(env, enif_make_atom(env, "loop"));
    auto ns = get_env(env, argv[2]);
    if (!ns) return badarg(env, enif_make_atom(env, "env"));
    if (ns->interpreter() != main_interpreter()) return make_error(env, atoms::env_wrong_interpreter);
    LoopOp op;
    if (argv[3] == atoms::exec) op = LoopOp::Exec;
    else if (argv[3] == atoms::eval) op = LoopOp::Eval;
    else return badarg(env, enif_make_atom(env, "op"));
    if (!enif_is_binary(env, argv[4])) return badarg(env, op == LoopOp::Exec ? atoms::code : atoms::expr);
    if (!enif_is_map(env, argv[5])) return badarg(env, atoms::locals);
    auto job = make_job(env, op, op == LoopOp::Exec ? Op::Exec : Op::Eval, argv[1], argv + 4, 2);
    if (!job) return make_error(env, atoms::no_memory);
    job->req->ns = std::move(ns);
    return enqueue(env, *loop, std::move(job));
}

}  // namespace ep
