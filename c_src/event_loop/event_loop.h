// The asyncio event loop driven from Erlang (spec §6). One OS thread in the
// main interpreter runs an ordinary asyncio loop; Erlang processes hand it
// jobs through a queue and a wake fd the loop watches (add_reader), so an
// idle loop sleeps in epoll, and replies go out by enif_send.
#pragma once

#include <erl_nif.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "context/context.h"
#include "context/request.h"
#include "event_loop/wake_fd.h"

namespace ep {

class Env;
class LoopDriver;

enum class LoopOp : std::uint8_t {
    Exec,   // req.args: Code          (in req.ns, the caller's loop namespace)
    Eval,   // req.args: Expr, Locals  (likewise)
    Task,   // req.args: Module, Function, Args, Kwargs; the caller waits for the reply
    Spawn,  // likewise, but nobody waits: a failure is reported to the loop's owner
};

struct LoopJob {
    LoopOp op = LoopOp::Task;
    std::uint64_t id = 0;
    std::unique_ptr<Request> req;
    // Where '__main__' names are looked up, in order, before the real
    // __main__: the caller's py:exec envs, then its loop namespace.
    std::vector<std::shared_ptr<Env>> lookup;
    // The caller has py:exec envs in other interpreters, which the loop
    // (in the main interpreter) cannot look into.
    bool foreign_env = false;
    // Relayed writes (output.h) when the job started: if any were made by
    // the time it ends, its answer follows them.
    std::uint64_t writes_at_start = 0;
};

class EventLoop : public std::enable_shared_from_this<EventLoop> {
public:
    EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;
    ~EventLoop();

    // Starts the loop thread; `ready` gets {Tag, ok} or {Tag, {error, R}}.
    // Spawned tasks that fail are reported to `owner`.
    bool start(Notify ready, const ErlNifPid& owner, std::string* error);

    // Any thread. Queues `job` and returns its id, or 0 if the loop is not
    // running.
    std::uint64_t submit(std::unique_ptr<LoopJob> job);

    // Any thread, for a Task job whose caller gave up: Cancelled means no
    // reply will be sent (the task is cancelled if it has started);
    // Finished means the reply is sent or on its way.
    enum class Cancel : std::uint8_t { Cancelled, Finished };
    Cancel cancel(std::uint64_t id);

    // Any thread, never blocks: refuses new jobs, answers queued ones with
    // {error, event_loop_stopped}, and has the loop cancel its tasks and end.
    // False if it was not running. `caller_env` as for MsgEnv::send.
    bool stop(ErlNifEnv* caller_env);

    bool running() const { return state_.load(std::memory_order_acquire) == State::Running; }
    bool stopping() const { return state_.load(std::memory_order_acquire) == State::Stopping; }
    std::size_t queue_length() const;
    std::size_t tasks_awaited() const;  // Task jobs whose reply is still to come
    std::uint64_t jobs_done() const { return done_.load(std::memory_order_relaxed); }
    const ErlNifPid& owner() const { return owner_; }
    long thread_id() const { return thread_id_.load(std::memory_order_relaxed); }  // the OS tid, once started
    static std::size_t alive() { return alive_.load(std::memory_order_relaxed); }

    // Loop thread, GIL held (called from the loop's Python side).
    // The wake fd fired: hand queued jobs and cancellations to the driver.
    void on_wake(LoopDriver& driver);
    // An answer has just been sent: if the loop is otherwise idle, wait a
    // moment for the next job before it goes back to polling.
    void linger(LoopDriver& driver);
    // A Task job is finished: true if its reply is still wanted (it was not
    // cancelled). Each id is claimed once.
    bool claim_reply(std::uint64_t id);
    void count_done() { done_.fetch_add(1, std::memory_order_relaxed); }

private:
    enum class State : std::uint8_t { Created, Running, Stopping, Stopped };

    void thread_main(Notify ready);
    // A loop that has not ended kStopGrace after stop() runs code that does
    // not give the loop back (a busy coroutine, a blocking call): it gets
    // erlang.Interrupted raised in it, every 100 ms, until the thread ends.
    void interrupt_when_stuck();
    // Empties the queue; returns the jobs whose caller still waits for an
    // answer (not spawned, not cancelled). mutex_ held.
    std::vector<std::unique_ptr<LoopJob>> take_unanswered_locked();
    // Hands queued jobs and cancellations to the driver; false when more
    // are queued than one wake-up takes (the loop is woken again for them).
    bool start_jobs(LoopDriver& driver);
    // Without the GIL, waits up to kSpin for a new job; true if one came.
    bool spin_for_jobs();

    // Jobs handed to the loop per wake-up; more wake it again, so timers
    // and I/O get their turn under a flood of submissions.
    static constexpr std::size_t kMaxJobsPerWake = 256;
    static constexpr std::chrono::microseconds kSpin{50};
    // Longer than shutdown's own waits for cancelled tasks (1 s).
    static constexpr std::chrono::milliseconds kStopGrace{1500};

    std::atomic<State> state_{State::Created};
    ErlNifPid owner_{};
    WakeFd wake_;

    mutable std::mutex mutex_;
    std::deque<std::unique_ptr<LoopJob>> queue_;
    std::vector<std::uint64_t> cancels_;
    std::unordered_map<std::uint64_t, bool> awaited_;  // Task id -> cancelled
    std::uint64_t last_id_ = 0;

    std::atomic<std::uint64_t> done_{0};
    std::atomic<long> thread_id_{0};
    std::atomic<unsigned long> python_ident_{0};  // PyThread_get_thread_ident() of the loop thread
    static std::atomic<std::size_t> alive_;
};

}  // namespace ep
