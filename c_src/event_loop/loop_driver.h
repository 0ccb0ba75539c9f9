// The Python side of the event loop: the asyncio loop object, jobs started
// on it, and finished tasks turned into replies. Lives on the loop thread;
// every method runs with the main interpreter's GIL held.
#pragma once

#include <Python.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "event_loop/event_loop.h"
#include "runtime/py_ref.h"
#include "context/request_runner.h"

namespace ep {

class LoopDriver {
public:
    // Makes a new asyncio loop that watches `wake_fd`. nullptr, with a
    // reason, if Python refuses.
    static std::unique_ptr<LoopDriver> create(EventLoop& loop, int wake_fd, std::string* error);
    LoopDriver(const LoopDriver&) = delete;
    LoopDriver& operator=(const LoopDriver&) = delete;
    ~LoopDriver();

    // Runs the asyncio loop until the EventLoop stops. Exceptions that
    // escape it (SystemExit or KeyboardInterrupt raised in a task, a stray
    // loop.stop()) are reported to the owner and the loop goes on.
    void run();
    // Ends run() at the end of the loop's current iteration.
    void request_stop();
    // After run(): cancels what still runs, gives it a moment to finish,
    // answers the rest {error, event_loop_stopped}, and closes the loop.
    void shutdown();

    // Takes `job` over unless it throws first (then the caller answers it).
    void start(std::unique_ptr<LoopJob>&& job);
    // No callback is ready to run: the loop would go back to polling.
    bool nothing_ready() const;
    // Cancels the asyncio task of Task job `id`, if it is one.
    void cancel(std::uint64_t id);

private:
    explicit LoopDriver(EventLoop& loop);
    bool init(int wake_fd, std::string* error);

    void start_call(std::unique_ptr<LoopJob>&& job);
    // An awaitable came back: run it as a task; false with a Python error set.
    bool start_task(std::unique_ptr<LoopJob>& job, PyObject* awaitable);
    void task_done(PyObject* task);
    void complete(LoopJob& job, PyObject* task);
    void finish(LoopJob& job, RunResult& result);
    void report_spawn_failure(LoopJob& job, const RunResult& result);
    // A Python error that escaped the loop, to the owner's log (at most a
    // few a second: a callback can raise SystemExit over and over).
    void report_loop_error();
    // Tasks still running after shutdown had them cancelled: answered now,
    // no longer calling back into us.
    void abandon_live_tasks();

    static PyObject* wake_entry(PyObject* self, PyObject* unused);
    static PyObject* done_entry(PyObject* self, PyObject* task);

    // What the loop's C callbacks reach the driver through. Tasks may hold
    // those callbacks after the driver is gone: it clears `driver` first.
    struct Link {
        LoopDriver* driver;
    };

    struct Live {
        PyRef task;
        std::unique_ptr<LoopJob> job;
    };

    EventLoop& loop_;
    RequestRunner runner_;
    Link* link_ = nullptr;  // owned by the capsule the callbacks are bound to
    int wake_fd_ = -1;
    PyRef loop_obj_;      // the asyncio loop
    PyRef wake_fn_;       // watches the wake fd
    PyRef done_fn_;       // every task's done callback
    PyRef task_type_;     // asyncio.Task, for eager tasks (3.12+)
    PyRef eager_kwargs_;  // {"loop": loop, "eager_start": True}
    PyRef ensure_future_;
    PyRef cancel_tasks_fn_;
    PyRef close_fn_;
    PyRef ready_;  // the loop's queue of ready callbacks, if it has the usual one
    // Running task -> job id; a multimap, as two jobs may return one Future.
    std::unordered_multimap<PyObject*, std::uint64_t> ids_;
    std::unordered_map<std::uint64_t, Live> live_;      // job id -> its task and job
    std::chrono::steady_clock::time_point reports_since_{};
    int reports_ = 0;
};

}  // namespace ep
