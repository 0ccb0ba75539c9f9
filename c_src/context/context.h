// A context: one OS thread that owns an interpreter lane and runs every
// request sent to it (spec §2). Callers enqueue from scheduler threads and
// wait in `receive`; only this thread touches Python.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/interpreter.h"
#include "runtime/interrupter.h"
#include "erl/msg_env.h"
#include "context/request.h"
#include "context/request_queue.h"
#include "runtime/subinterpreter.h"

namespace ep {

class CallbackWaiter;
class Env;
class RequestRunner;
class Stream;
struct RunResult;

enum class Mode : std::uint8_t { Worker, Subinterp, OwnGil };

struct ContextConfig {
    Mode mode = Mode::Worker;
    std::chrono::microseconds spin{50};  // busy-wait before sleeping when idle
    std::size_t code_cache_size = 256;
    std::size_t max_batch = 64;  // requests run per GIL hold before others get a turn
    std::size_t max_queue = 100000;  // requests queued at most; past it, {error, overloaded}
};

// Someone to tell when the context is ready or stopped: {Tag, Message}.
struct Notify {
    ErlNifPid pid;
    MsgEnv env;
    ERL_NIF_TERM tag = 0;

    static Notify make(ErlNifEnv* caller_env, ERL_NIF_TERM tag);
    // `message` built in env; caller_env as for MsgEnv::send.
    void send(ERL_NIF_TERM message, ErlNifEnv* caller_env = nullptr);
};

class Context : public std::enable_shared_from_this<Context> {
public:
    using Queue = RequestQueue<Request>;

    explicit Context(ContextConfig config);
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    ~Context();

    // Starts the thread; `ready` receives {Tag, ok} or {Tag, {error, Reason}}
    // once the interpreter lane is set up. False (with `error`) if no thread
    // could be made.
    bool start(Notify ready, std::string* error);

    // Any thread. Queues `req`; returns its id, or 0 (with `req` left to
    // the caller) when the context is not running (stopped, failed, or not
    // yet started: Closed) or its queue is full (Full).
    std::uint64_t submit(std::unique_ptr<Request>& req, Queue::Push* status);
    // Any thread: a request of the context's own making (a stream's next
    // step), past the limit. False when the context no longer runs.
    bool submit_internal(std::unique_ptr<Request> req);

    // Any thread (py:interrupt): raises erlang.Interrupted in the request
    // running now, which answers {error, interrupted}. False when none runs.
    bool interrupt_running();

    // Any thread. Cancels request `id` after its caller timed out: a queued
    // request is dropped; a running one is interrupted and its reply
    // suppressed. NotFound means the reply is already on its way.
    Queue::Cancel cancel(std::uint64_t id);

    // Any thread, never blocks. Refuses new requests, answers queued ones
    // with {error, context_stopped}, interrupts the running one. `done`
    // (optional) gets {Tag, stopped} when the thread has let go of Python.
    // False when the context had already stopped. `caller_env`: the env of
    // the NIF or resource callback calling, or nullptr on a non-VM thread.
    bool stop(ErlNifEnv* caller_env, Notify* done = nullptr);

    // This context's thread, GIL held, inside erlang.call: serves the queue
    // (nested requests) until `waiter` is done. False when the request that
    // called must give up instead (its caller timed out, or the context is
    // stopping).
    bool wait_for_callback(CallbackWaiter& waiter);

    // This context's thread, GIL held: drops an interrupt raised into the
    // innermost request that has not fired yet.
    void flush_pending_interrupt();

    // Any thread: an env made for this context; its namespace is released
    // when the context stops, not when its process next happens to call.
    void register_env(const std::shared_ptr<Env>& env);
    // Any thread: a stream run on this context; when the context stops, a
    // stream still running ends with {error, context_stopped} and its
    // iterator is closed on this thread.
    void register_stream(const std::shared_ptr<Stream>& stream);

    // Called by an interrupter with this context's interpreter's GIL
    // held: raises erlang.Interrupted in request `id` if it is still running
    // and was cancelled, or the context is stopping. True while a stopping
    // context still runs that request (the interrupter then raises again later).
    bool deliver_interrupt(std::uint64_t id);

    Mode mode() const { return config_.mode; }
    bool running() const { return state_.load(std::memory_order_acquire) == State::Running; }
    std::size_t queue_length() const { return queue_.size(); }
    std::size_t queue_peak() const { return queue_.peak(); }
    std::uint64_t refused() const { return queue_.refused(); }
    std::size_t max_queue() const { return config_.max_queue; }
    bool busy() const { return queue_.running_id() != 0; }  // a request is running
    // Context thread: f() (which must not block) unless the request this
    // thread runs has been cancelled by its caller; see RequestQueue.
    template <class F>
    bool unless_running_cancelled(F&& f) const {
        return queue_.unless_running_cancelled(std::forward<F>(f));
    }
    std::uint64_t requests_served() const { return served_.load(std::memory_order_relaxed); }
    // Set once the thread is ready; never changes after.
    std::shared_ptr<Interpreter> interpreter() const;
    // The namespace of context-level calls that name no env
    // (py_nif:context_exec/2, context_eval/3). Set once ready.
    std::shared_ptr<Env> shared_env() const;

    static std::size_t alive() { return alive_.load(std::memory_order_relaxed); }

private:
    enum class State : std::uint8_t { Created, Starting, Running, Stopping, Stopped };

    void thread_main(Notify ready);
    bool attach_lane(std::string* error);  // makes the thread state (and interpreter)
    void detach_lane();
    // Asks for erlang.Interrupted in request `id` (again every 100 ms while
    // `repeat` and the context is stopping).
    void interrupt(std::uint64_t id, bool repeat);
    void serve();
    // GIL held: runs up to max_batch queued requests; with `parent`, only
    // those made by the process running Erlang call number `parent`.
    void run_batch(RequestRunner& runner, std::uint64_t parent = 0);
    void handle(Request& req, std::uint64_t id, RequestRunner& runner);
    void finish(Request& req, std::uint64_t id, RunResult& result);
    // This thread, GIL held, as the context stops: ends every stream left.
    void close_streams(RequestRunner& runner);

    ContextConfig config_;
    Queue queue_;
    std::atomic<State> state_{State::Created};
    std::atomic<std::uint64_t> served_{0};

    mutable std::mutex mutex_;  // guards interp_ publication, stop_waiters_ and envs_
    std::shared_ptr<Interpreter> interp_;
    std::vector<Notify> stop_waiters_;
    std::vector<std::weak_ptr<Env>> envs_;
    std::size_t envs_pruned_at_ = 64;
    std::vector<std::weak_ptr<Stream>> streams_;
    std::size_t streams_pruned_at_ = 64;
    std::shared_ptr<Env> shared_env_;

    // Owned by the context thread.
    PyThreadState* tstate_ = nullptr;
    RequestRunner* runner_ = nullptr;  // serve()'s, for nested requests
    Subinterpreter sub_;       // subinterp and owngil modes
    Interrupter interrupter_;  // subinterp and owngil modes
    unsigned long thread_ident_ = 0;
    // Guarded by the interpreter's GIL: the request an interrupt was raised in.
    std::uint64_t interrupted_id_ = 0;
    std::uint64_t interrupts_raised_ = 0;  // likewise: how many, ever
    std::uint64_t waiting_id_ = 0;         // likewise: the request waiting in erlang.call
    std::uint64_t finishing_id_ = 0;  // the request being finished takes no new interrupt

    static std::atomic<std::size_t> alive_;
};

}  // namespace ep
