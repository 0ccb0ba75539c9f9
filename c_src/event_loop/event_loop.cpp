#include "event_loop/event_loop.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "erl/atoms.h"
#include "context/current_call.h"
#include "runtime/interrupter.h"
#include "erl/erl_terms.h"
#include "runtime/gil.h"
#include "event_loop/loop_driver.h"
#include "runtime/native_thread.h"
#include "runtime/python_runtime.h"

namespace ep {

std::atomic<std::size_t> EventLoop::alive_{0};

EventLoop::EventLoop() { alive_.fetch_add(1, std::memory_order_relaxed); }

EventLoop::~EventLoop() { alive_.fetch_sub(1, std::memory_order_relaxed); }

bool EventLoop::start(Notify ready, const ErlNifPid& owner, std::string* error) {
    owner_ = owner;
    if (!wake_.open(error)) return false;
    auto self = shared_from_this();
    auto notify = std::make_shared<Notify>(std::move(ready));
    if (!spawn_detached_thread([self, notify] { self->thread_main(std::move(*notify)); }, "py_event_loop", error)) {
        state_.store(State::Stopped, std::memory_order_release);
        return false;
    }
    return true;
}

std::uint64_t EventLoop::submit(std::unique_ptr<LoopJob> job) {
    std::uint64_t id;
    {
        std::lock_guard lock(mutex_);
        if (state_.load(std::memory_order_acquire) != State::Running) return 0;
        id = job->id = ++last_id_;
        if (job->op == LoopOp::Task) awaited_.emplace(id, false);
        queue_.push_back(std::move(job));
    }
    wake_.signal();
    return id;
}

EventLoop::Cancel EventLoop::cancel(std::uint64_t id) {
    {
        std::lock_guard lock(mutex_);
        auto it = awaited_.find(id);
        if (it == awaited_.end()) return Cancel::Finished;
        if (it->second) return Cancel::Cancelled;
        it->second = true;
        cancels_.push_back(id);
    }
    wake_.signal();
    return Cancel::Cancelled;
}

bool EventLoop::stop(ErlNifEnv* caller_env) {
    std::vector<std::unique_ptr<LoopJob>> queued;
    {
        std::lock_guard lock(mutex_);
        State s = state_.load(std::memory_order_acquire);
        if (s == State::Stopping || s == State::Stopped) return false;
        state_.store(s == State::Created ? State::Stopped : State::Stopping, std::memory_order_release);
        queued = take_unanswered_locked();
    }
    for (auto& job : queued) job->req->fail(atoms::event_loop_stopped, caller_env);
    wake_.signal();
    interrupt_when_stuck();
    return true;
}

void EventLoop::interrupt_when_stuck() {
    std::weak_ptr<EventLoop> weak = weak_from_this();
    auto deadline = std::chrono::steady_clock::now() + kStopGrace;
    // Runs on the main interpreter's interrupter thread, GIL held.
    main_interrupter().post([weak, deadline] {
        auto self = weak.lock();
        if (!self || self->state_.load(std::memory_order_acquire) == State::Stopped) return false;
        unsigned long ident = self->python_ident_.load(std::memory_order_acquire);
        if (std::chrono::steady_clock::now() >= deadline && ident != 0)
            PyThreadState_SetAsyncExc(ident, main_interpreter()->types().interrupted);
        return true;
    });
}

std::vector<std::unique_ptr<LoopJob>> EventLoop::take_unanswered_locked() {
    std::vector<std::unique_ptr<LoopJob>> out;
    for (auto& job : queue_) {
        if (job->op == LoopOp::Spawn) continue;
        if (job->op == LoopOp::Task) {
            auto it = awaited_.find(job->id);
            bool wanted = it != awaited_.end() && !it->second;  // a cancelled caller has gone on
            if (it != awaited_.end()) awaited_.erase(it);
            if (!wanted) continue;
        }
        out.push_back(std::move(job));
    }
    queue_.clear();
    return out;
}

std::size_t EventLoop::queue_length() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
}

std::size_t EventLoop::tasks_awaited() const {
    std::lock_guard lock(mutex_);
    return awaited_.size();
}

bool EventLoop::claim_reply(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    auto it = awaited_.find(id);
    if (it == awaited_.end()) return false;
    bool wanted = !it->second;
    awaited_.erase(it);
    return wanted;
}

void EventLoop::on_wake(LoopDriver& driver) {
    if (start_jobs(driver)) linger(driver);
    else if (stopping()) driver.request_stop();
}

void EventLoop::linger(LoopDriver& driver) {
    // While the loop has nothing else ready, wait a moment for the next
    // job rather than go back to epoll: a round trip then costs no wake-up
    // of this thread (context threads do the same).
    while (!stopping() && driver.nothing_ready() && spin_for_jobs() && start_jobs(driver)) {
    }
    // The stop may have been the wake-up we consumed.
    if (stopping()) driver.request_stop();
}

bool EventLoop::start_jobs(LoopDriver& driver) {
    wake_.consume();
    std::vector<std::unique_ptr<LoopJob>> jobs, dropped;
    std::vector<std::uint64_t> cancels;
    bool more = false;
    {
        std::lock_guard lock(mutex_);
        cancels.swap(cancels_);
        std::size_t n = std::min(queue_.size(), kMaxJobsPerWake);
        jobs.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            std::unique_ptr<LoopJob> job = std::move(queue_.front());
            queue_.pop_front();
            // A task cancelled before it started is not started at all.
            auto it = job->op == LoopOp::Task ? awaited_.find(job->id) : awaited_.end();
            if (it != awaited_.end() && it->second) {
                awaited_.erase(it);
                dropped.push_back(std::move(job));
            } else {
                jobs.push_back(std::move(job));
            }
        }
        more = !queue_.empty();
    }
    if (more) wake_.signal();
    for (std::uint64_t id : cancels) driver.cancel(id);
    for (auto& job : jobs) {
        try {
            driver.start(std::move(job));
        } catch (...) {
            // Out of memory: a job not yet taken over is answered, not lost.
            if (job && job->op != LoopOp::Spawn && (job->op != LoopOp::Task || claim_reply(job->id)))
                job->req->fail(atoms::no_memory);
        }
    }
    return !more;
}

bool EventLoop::spin_for_jobs() {
    GilRelease release;
    auto deadline = std::chrono::steady_clock::now() + kSpin;
    for (unsigned i = 1; !wake_.pending(); ++i) {
        if ((i & 63) == 0) {
            if (std::chrono::steady_clock::now() >= deadline) return false;
            std::this_thread::yield();
        }
    }
    return true;
}

void EventLoop::thread_main(Notify ready) {
    thread_id_.store(static_cast<long>(::gettid()), std::memory_order_relaxed);
    PyThreadState* tstate = PyThreadState_New(main_interpreter()->state());
    if (tstate == nullptr) {
        ready.send(make_error(ready.env.get(), atoms::python_error, "PyThreadState_New failed"));
        state_.store(State::Stopped, std::memory_order_release);
        return;
    }
    PyEval_RestoreThread(tstate);
    python_ident_.store(PyThread_get_thread_ident(), std::memory_order_release);
    current_call().on_event_loop = true;
    {
        std::string error;
        std::unique_ptr<LoopDriver> driver;
        try {
            driver = LoopDriver::create(*this, wake_.fd(), &error);
        } catch (...) {
            error = "out of memory while starting the event loop";
        }
        if (!driver) {
            state_.store(State::Stopped, std::memory_order_release);
            ready.send(make_error(ready.env.get(), atoms::python_error, error));
        } else {
            State expected = State::Created;
            bool started = state_.compare_exchange_strong(expected, State::Running);
            ready.send(started ? atoms::ok : make_error(ready.env.get(), atoms::event_loop_stopped));
            try {
                if (started) driver->run();
            } catch (...) {
                // Out of memory: the loop ends as if stopped.
                stop(nullptr);
            }
            try {
                driver->shutdown();
            } catch (...) {
            }
            driver.reset();
        }
    }
    current_call().on_event_loop = false;
    python_ident_.store(0, std::memory_order_release);  // no interrupt may land past this point
    PyThreadState_Clear(tstate);
    PyThreadState_DeleteCurrent();
    std::vector<std::unique_ptr<LoopJob>> queued;
    {
        std::lock_guard lock(mutex_);
        state_.store(State::Stopped, std::memory_order_release);
        queued = take_unanswered_locked();
    }
    for (auto& job : queued) job->req->fail(atoms::event_loop_stopped);
}

}  // namespace ep
