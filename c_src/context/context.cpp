#include "context/context.h"

#include <algorithm>

#include "erl/atoms.h"
#include "erlang_module/callbacks.h"
#include "context/current_call.h"
#include "context/env.h"
#include "erl/erl_terms.h"
#include "runtime/gil.h"
#include "runtime/native_thread.h"
#include "runtime/python_runtime.h"
#include "context/request_runner.h"
#include "context/stream.h"
#include "context/stream_driver.h"

namespace ep {

std::atomic<std::size_t> Context::alive_{0};

Notify Notify::make(ErlNifEnv* caller_env, ERL_NIF_TERM tag) {
    Notify n;
    enif_self(caller_env, &n.pid);
    n.tag = n.env.copy(tag);
    return n;
}

void Notify::send(ERL_NIF_TERM message, ErlNifEnv* caller_env) {
    env.send(pid, enif_make_tuple2(env.get(), tag, message), caller_env);
}

Context::Context(ContextConfig config) : config_(config) { alive_.fetch_add(1, std::memory_order_relaxed); }

Context::~Context() { alive_.fetch_sub(1, std::memory_order_relaxed); }

std::shared_ptr<Interpreter> Context::interpreter() const {
    std::lock_guard lock(mutex_);
    return interp_;
}

bool Context::start(Notify ready, std::string* error) {
    State expected = State::Created;
    if (!state_.compare_exchange_strong(expected, State::Starting)) {
        *error = "context already started";
        return false;
    }
    auto self = shared_from_this();
    auto notify = std::make_shared<Notify>(std::move(ready));
    if (!spawn_detached_thread([self, notify] { self->thread_main(std::move(*notify)); }, "py_context", error)) {
        state_.store(State::Stopped, std::memory_order_release);
        queue_.close();
        return false;
    }
    return true;
}

std::uint64_t Context::submit(std::unique_ptr<Request>& req, Queue::Push* status) {
    if (state_.load(std::memory_order_acquire) != State::Running) {
        *status = Queue::Push::Closed;
        return 0;
    }
    return queue_.push(req, config_.max_queue, status);
}

bool Context::submit_internal(std::unique_ptr<Request> req) {
    if (!req || state_.load(std::memory_order_acquire) != State::Running) return false;
    return queue_.push(std::move(req)) != 0;
}

bool Context::interrupt_running() {
    std::uint64_t id = queue_.interrupt_running();
    if (id == 0) return false;
    interrupt(id, false);
    queue_.poke();  // a request waiting for an Erlang callback checks for this
    return true;
}

Context::Queue::Cancel Context::cancel(std::uint64_t id) {
    std::unique_ptr<Request> dropped;
    Queue::Cancel outcome = queue_.cancel(id, &dropped);
    if (outcome == Queue::Cancel::Running) {
        interrupt(id, false);
        queue_.poke();  // a request waiting for an Erlang callback checks for this
    }
    return outcome;
}

bool Context::stop(ErlNifEnv* caller_env, Notify* done) {
    bool first = false;
    {
        std::lock_guard lock(mutex_);
        State s = state_.load(std::memory_order_acquire);
        if (s == State::Stopped) return false;
        if (s == State::Created) {
            state_.store(State::Stopped, std::memory_order_release);
            queue_.close();
            return false;
        }
        if (s != State::Stopping) {
            state_.store(State::Stopping, std::memory_order_release);
            first = true;
        }
        if (done) stop_waiters_.push_back(std::move(*done));
    }
    if (!first) return true;
    for (auto& req : queue_.close()) req->fail(atoms::context_stopped, caller_env);
    if (std::uint64_t running = queue_.running_id()) interrupt(running, /*repeat=*/true);
    return true;
}

void Context::interrupt(std::uint64_t id, bool repeat) {
    Interrupter& interrupter = config_.mode == Mode::Worker ? main_interrupter() : interrupter_;
    std::weak_ptr<Context> weak = weak_from_this();
    interrupter.post([weak, id, repeat] {
        auto self = weak.lock();
        return self && self->deliver_interrupt(id) && repeat;
    });
}

bool Context::deliver_interrupt(std::uint64_t id) {
    // The interrupter holds our interpreter's GIL, and the running id only
    // changes under that GIL, so this check cannot race the request's
    // end; a request already being finished takes no new interrupt.
    if (id == 0 || queue_.running_id() != id || finishing_id_ == id) return false;
    bool stopping = state_.load(std::memory_order_acquire) == State::Stopping;
    if (!queue_.innermost_wants_interrupt(id) && !stopping) return false;
    // A timeout interrupts once; a stop keeps interrupting (the interrupter
    // repeats the job), in case the code swallows the exception.
    if (interrupted_id_ != id || stopping) {
        if (waiting_id_ == id) {
            // Waiting in erlang.call, out of Python: woken, the wait sees
            // this and erlang.call raises the exception itself. An
            // asynchronous one would fire again, later, in whatever Python
            // runs next (the code that caught the first, say).
            queue_.poke();
        } else {
            PyThreadState_SetAsyncExc(thread_ident_, interp_->types().interrupted);
            // An async generator's step may be waiting in its loop's
            // select(): the exception only fires once that returns. (The
            // runner is this context's; its loop is made and dropped only
            // under this same GIL.)
            if (runner_ != nullptr) runner_->streams().wake();
        }
        interrupted_id_ = id;
        ++interrupts_raised_;
    }
    queue_.take_interrupt(id);  // a py:interrupt is raised once
    return stopping;
}

void Context::thread_main(Notify ready) {
    std::string error;
    bool attached = false;
    try {
        attached = attach_lane(&error);
    } catch (...) {
        error = "out of memory while starting the context";
    }
    if (attached) {
        State expected = State::Starting;
        if (state_.compare_exchange_strong(expected, State::Running)) {
            ready.send(atoms::ok);
            serve();
        } else {
            ready.send(make_error(ready.env.get(), atoms::context_stopped));
        }
        detach_lane();
    } else {
        ready.send(make_error(ready.env.get(), atoms::python_error, error));
    }
    std::vector<Notify> waiters;
    {
        std::lock_guard lock(mutex_);
        state_.store(State::Stopped, std::memory_order_release);
        waiters.swap(stop_waiters_);
    }
    for (auto& req : queue_.close()) req->fail(atoms::context_stopped);
    for (auto& w : waiters) w.send(atoms::stopped);
}

bool Context::attach_lane(std::string* error) {
    std::shared_ptr<Interpreter> interp;
    if (config_.mode == Mode::Worker) {
        interp = main_interpreter();
        tstate_ = PyThreadState_New(interp->state());
        if (tstate_ == nullptr) {
            *error = "PyThreadState_New failed";
            return false;
        }
    } else {
        // Made on this thread, which holds no GIL yet (design.md fact 10:
        // on 3.12 a failed creation breaks the calling thread's GIL state).
        if (!create_subinterpreter(config_.mode == Mode::OwnGil, runtime_options().extra_path, &sub_, error))
            return false;
        tstate_ = sub_.tstate;
        interp = sub_.interp;
        if (!interrupter_.start(interp->state(), error)) {
            end_subinterpreter(sub_);
            return false;
        }
        // Only this thread can release this interpreter's objects: wake it.
        std::weak_ptr<Context> weak = weak_from_this();
        interp->set_waker([weak] {
            if (auto self = weak.lock()) self->queue_.poke();
        });
    }
    PyEval_RestoreThread(tstate_);
    thread_ident_ = PyThread_get_thread_ident();
    PyEval_SaveThread();
    interp->offer_default_context(weak_from_this());
    auto shared = std::make_shared<Env>(interp, weak_from_this());
    std::lock_guard lock(mutex_);
    interp_ = std::move(interp);
    shared_env_ = shared;
    envs_.push_back(shared);
    return true;
}

std::shared_ptr<Env> Context::shared_env() const {
    std::lock_guard lock(mutex_);
    return shared_env_;
}

namespace {
// Adds `item` to a list of weak pointers, dropping the expired ones once the
// list has doubled since last time.
template <class T>
void remember(std::vector<std::weak_ptr<T>>& list, std::size_t& pruned_at, const std::shared_ptr<T>& item) {
    if (list.size() >= pruned_at) {
        std::erase_if(list, [](const std::weak_ptr<T>& w) { return w.expired(); });
        pruned_at = std::max<std::size_t>(64, list.size() * 2);
    }
    list.push_back(item);
}
}  // namespace

void Context::register_env(const std::shared_ptr<Env>& env) {
    std::lock_guard lock(mutex_);
    remember(envs_, envs_pruned_at_, env);
}

void Context::register_stream(const std::shared_ptr<Stream>& stream) {
    std::lock_guard lock(mutex_);
    remember(streams_, streams_pruned_at_, stream);
}

void Context::close_streams(RequestRunner& runner) {
    std::vector<std::weak_ptr<Stream>> streams;
    {
        std::lock_guard lock(mutex_);
        streams.swap(streams_);
    }
    MsgEnv env;
    for (auto& weak : streams) {
        auto stream = weak.lock();
        if (!stream) continue;
        stream->end_with_error(env.get(), atoms::context_stopped);
        runner.streams().close(*stream);
    }
}

void Context::detach_lane() {
    current_call().no_callbacks = true;  // a __del__ here must not wait on Erlang
    PyEval_RestoreThread(tstate_);
    std::vector<std::weak_ptr<Env>> envs;
    {
        std::lock_guard lock(mutex_);
        envs.swap(envs_);
        shared_env_.reset();
    }
    for (auto& weak : envs)
        if (auto env = weak.lock()) env->release_namespace();
    if (interp_->has_pending_releases()) interp_->drain_releases();
    if (config_.mode == Mode::Worker) {
        PyThreadState_Clear(tstate_);
        PyThreadState_DeleteCurrent();
    } else {
        PyEval_SaveThread();
        interrupter_.stop();  // its thread state must go before the interpreter ends
        end_subinterpreter(sub_);
    }
    tstate_ = nullptr;
    current_call().no_callbacks = false;
}

void Context::serve() {
    RequestRunner runner(interp_, weak_from_this(), config_.code_cache_size);
    runner_ = &runner;
    current_call().context = this;
    try {
        while (!queue_.closed()) {
            queue_.wait(config_.spin);
            GilHold gil(tstate_);
            run_batch(runner);
        }
    } catch (...) {
        // Only allocation failures get here; the context ends as if stopped.
    }
    current_call().context = nullptr;
    runner_ = nullptr;
    GilHold gil(tstate_);
    try {
        close_streams(runner);  // their `finally` blocks run here, on this thread
    } catch (...) {
    }
    runner.clear();  // cached code objects die under the GIL, whatever happened
}

void Context::run_batch(RequestRunner& runner, std::uint64_t parent) {
    for (std::size_t n = 0; n < config_.max_batch; ++n) {
        std::uint64_t id = 0;
        std::unique_ptr<Request> req =
            parent == 0 ? queue_.start_next(&id)
                        : queue_.start_next_if([parent](const Request& r) { return r.callback_parent == parent; }, &id);
        if (!req) break;
        handle(*req, id, runner);
        // Drop the request (and maybe the last hold on its env) while the
        // GIL is still ours; the env's dict then goes to the release queue.
        req.reset();
        served_.fetch_add(1, std::memory_order_relaxed);
    }
    if (interp_->has_pending_releases()) interp_->drain_releases();
}

bool Context::wait_for_callback(CallbackWaiter& waiter) {
    // The reply, a cancel and a stop all poke the queue.
    std::weak_ptr<Context> weak = weak_from_this();
    waiter.on_complete([weak] {
        if (auto self = weak.lock()) self->queue_.poke();
    });
    const std::uint64_t mine = queue_.running_id();
    const std::uint64_t call = waiter.id();
    // Checked right before nested requests run, never after: an interrupt
    // raised for this request while we waited must not fire in one of them.
    // A py:interrupt not yet raised is taken here (the GIL is ours, so the
    // interrupter cannot raise it meanwhile): erlang.call then raises it.
    // An interrupt raised into this request before the wait began (and
    // caught by its code, say) is no reason to give up; one raised since is.
    bool gave_up = false;
    const std::uint64_t raised_before = interrupts_raised_;
    // Tells deliver_interrupt that this request waits out of Python.
    struct Waiting {
        std::uint64_t& slot;
        std::uint64_t saved;
        Waiting(std::uint64_t& s, std::uint64_t id) : slot(s), saved(s) { slot = id; }
        ~Waiting() { slot = saved; }
    } waiting{waiting_id_, mine};
    auto give_up = [&] {
        gave_up = gave_up || queue_.closed() ||
                  (mine != 0 && (queue_.is_cancelled(mine) || queue_.take_interrupt(mine) ||
                                 (interrupted_id_ == mine && interrupts_raised_ != raised_before)));
        return gave_up;
    };
    // Only requests of this call's own chain run nested: unrelated ones keep
    // their place in the queue (running them here would nest as deep as the
    // queue is long, and starve the outer request).
    auto ours = [call](const Request& r) { return r.callback_parent == call; };
    while (!waiter.done()) {
        if (give_up()) return false;
        {
            GilRelease release;
            queue_.wait_for(ours, config_.spin);
        }
        if (waiter.done()) break;
        if (give_up()) return false;
        if (runner_ != nullptr) run_batch(*runner_, call);
    }
    return !give_up();
}

void Context::flush_pending_interrupt() {
    std::uint64_t top = queue_.running_id();
    if (top != 0 && interrupted_id_ == top && runner_ != nullptr) {
        runner_->flush_pending_interrupt();
        interrupted_id_ = 0;
    }
}

void Context::handle(Request& req, std::uint64_t id, RequestRunner& runner) {
    RunResult result;
    bool more = false;
    RequestScope scope(&req);  // erlang.self() and erlang.call see it
    try {
        if (req.reply_to == ReplyTo::Stream)
            more = runner.streams().run(req, [this] { return queue_.size() != 0; }, &result);
        else
            result = runner.run(req);
    } catch (...) {
        // Allocation failure inside the request: it fails, the context goes on.
        if (PyErr_Occurred()) PyErr_Clear();
        result = RunResult{RunResult::Failure, atoms::internal_error};
        more = false;
    }
    finish(req, id, result);
    // A stream's next step goes to the back of the queue: other calls run
    // in between.
    if (more && !submit_internal(Request::internal(Op::StreamStep, req.stream)))
        req.stream->end_with_error(req.env.get(), atoms::context_stopped);
}

void Context::finish(Request& req, std::uint64_t id, RunResult& result) {
    finishing_id_ = id;
    // An interrupt raised into this request may not have fired yet; let it
    // fire now, harmlessly, so it cannot hit the next request.
    flush_pending_interrupt();
    bool interrupted = false;  // by py:interrupt
    bool send = queue_.finish_running(&interrupted);
    finishing_id_ = 0;
    const bool stopping = state_.load(std::memory_order_acquire) == State::Stopping;
    // The request this one ran nested in may have been cancelled or
    // interrupted, or the context told to stop, while this one ran: only the
    // innermost request takes interrupts, so it is its turn now.
    if (std::uint64_t outer = queue_.running_id()) {
        if (stopping || queue_.innermost_wants_interrupt(outer)) interrupt(outer, stopping);
    }
    if (!send) return;  // its caller timed out and has gone on
    if (result.interrupted && stopping) req.fail(atoms::context_stopped);
    else if (result.interrupted && interrupted) req.fail(atoms::interrupted);
    else req.answer(result);
}

}  // namespace ep
