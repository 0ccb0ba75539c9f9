// Runs requests on a context thread: exec, eval, call and handle operations.
#pragma once

#include <memory>
#include <span>

#include "context/code_cache.h"
#include "context/request.h"
#include "context/stream_driver.h"
#include "convert/convert.h"

namespace ep {

// One per context thread. Every method runs with the context's GIL held.
class RequestRunner {
public:
    RequestRunner(std::shared_ptr<Interpreter> interp, std::weak_ptr<Context> context, std::size_t code_cache_size);

    // Builds the result in req.env.
    RunResult run(Request& req);
    // Drops cached Python objects; before the thread state goes away.
    void clear();
    // Runs a trivial code object: the eval loop raises an asynchronous
    // exception still pending for this thread, and it is discarded.
    void flush_pending_interrupt();

    // The callable Module:Function (req.args[0..1]); '__main__' names are
    // looked up in the `lookup` dicts in order, then the real __main__, then
    // builtins. Empty, with *error set, on failure.
    PyRef resolve(Request& req, std::span<PyObject* const> lookup, RunResult* error);
    // fn(*Args, **Kwargs) (req.args[2..3]), unconverted; empty, with *error
    // set, on failure.
    PyRef call_function(Request& req, PyObject* fn, RunResult* error);
    // {ok, Term} for `value` (a new reference, taken over), or the error.
    RunResult result_of(Request& req, PyObject* value);
    // The pending Python exception as the request's error.
    RunResult python_error(Request& req);

    // Stream requests (Op::StreamStart, StreamStep, StreamClose).
    StreamDriver& streams() { return streams_; }
    const ConvertScope& scope() const { return scope_; }
    const std::shared_ptr<Interpreter>& interpreter() const { return interp_; }

private:
    RunResult exec(Request& req, PyObject* globals);
    RunResult eval(Request& req, PyObject* globals);
    RunResult call(Request& req, PyObject* globals);
    RunResult get_attr(Request& req);
    RunResult call_method(Request& req);
    RunResult to_term(Request& req);
    RunResult buffer(Request& req);

    static RunResult failure(ERL_NIF_TERM reason) { return RunResult{RunResult::Failure, reason}; }
    static RunResult success(ERL_NIF_TERM value) { return RunResult{RunResult::Ok, value}; }
    // Positional args (a list) and keyword args (a map) of a call.
    bool call_args(Request& req, ERL_NIF_TERM args, ERL_NIF_TERM kwargs, PyRef* tuple, PyRef* dict, RunResult* error);

    std::shared_ptr<Interpreter> interp_;
    AtomNames atom_names_;
    ConvertScope scope_;
    CodeCache code_;
    PyRef flush_globals_;
    StreamDriver streams_;
};

}  // namespace ep
