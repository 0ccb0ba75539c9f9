// What the calling thread is doing for erlang_python right now: which
// context it is the thread of, and which request it runs. Python code
// calling into the erlang module reads this (erlang.self(), erlang.call).
#pragma once

#include <cstddef>
#include <memory>

namespace ep {

class Context;
class Interpreter;
struct Request;

struct CurrentCall {
    Context* context = nullptr;        // set on context threads only
    const Request* request = nullptr;  // the innermost request being run
    // erlang.call must not wait here: the service thread (a __del__ while
    // releasing objects would stall every interrupt) and a stopping context.
    bool no_callbacks = false;
    // The event loop's thread: waiting for Erlang here would stall every
    // task on the loop (and deadlock if the Erlang side uses the loop).
    bool on_event_loop = false;
    // Output (erlang._write) sent for `request` so far, and whether the
    // rest was cut; each RequestScope starts them again.
    std::size_t output_bytes = 0;
    bool output_cut = false;
};

// Thread-local; plain pointers, valid while the frames that set them run.
CurrentCall& current_call();

// Sets the request for a scope (requests nest while callbacks wait).
class RequestScope {
public:
    explicit RequestScope(const Request* req)
        : saved_(current_call().request), saved_bytes_(current_call().output_bytes), saved_cut_(current_call().output_cut) {
        current_call().request = req;
        current_call().output_bytes = 0;
        current_call().output_cut = false;
    }
    RequestScope(const RequestScope&) = delete;
    RequestScope& operator=(const RequestScope&) = delete;
    ~RequestScope() {
        current_call().request = saved_;
        current_call().output_bytes = saved_bytes_;
        current_call().output_cut = saved_cut_;
    }

private:
    const Request* saved_;
    std::size_t saved_bytes_;
    bool saved_cut_;
};

// The context that handles (opaque objects) made on this thread should run
// on: this thread's context, else the interpreter's default (its only
// context for a subinterpreter, a running worker for the main one).
std::weak_ptr<Context> default_context_for(Interpreter& interp);

}  // namespace ep
