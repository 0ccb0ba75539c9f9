#include "event_loop/loop_driver.h"

#include <new>
#include <vector>

#include "erl/atoms.h"
#include "context/current_call.h"
#include "runtime/embedded_source.h"
#include "context/env.h"
#include "erl/erl_terms.h"
#include "erlang_module/erlang_module.h"
#include "erlang_module/output.h"
#include "runtime/py_errors.h"
#include "runtime/python_runtime.h"

namespace ep {
namespace {

constexpr const char* kCapsuleName = "erlang_python.loop_driver";

// Run once the loop has stopped. cancel_tasks: cancel every task and let
// them unwind for a moment (a task that swallows its cancellation must not
// hold the VM). close: close async generators (without waiting on one that
// will not end), close what is left of the tasks' coroutines here, on the
// loop thread, and let go of executor threads without waiting for them.
constexpr const char* kShutdownSource = R"PY(
import asyncio

def cancel_tasks(loop, wait):
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=wait))

def close(loop, wait):
    try:
        gens = asyncio.ensure_future(loop.shutdown_asyncgens(), loop=loop)
        loop.run_until_complete(asyncio.wait([gens], timeout=wait))
    except BaseException:
        pass
    for t in asyncio.all_tasks(loop):
        try:
            t.get_coro().close()
        except BaseException:
            pass
    executor = getattr(loop, '_default_executor', None)
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)
)PY";

constexpr double kShutdownWaitSeconds = 1.0;
constexpr int kMaxReportsPerSecond = 5;

PyMethodDef wake_def = {"_erlang_python_wake", nullptr, METH_NOARGS, nullptr};
PyMethodDef done_def = {"_erlang_python_task_done", nullptr, METH_O, nullptr};


bool is_name_error(ErlNifEnv* env, const RunResult& r) {
    int arity;
    const ERL_NIF_TERM* items;
    return r.kind == RunResult::PythonError && enif_get_tuple(env, r.value, &arity, &items) && arity == 2 &&
           enif_is_identical(items[0], enif_make_atom(env, "NameError"));
}

// Each job runs in a context of its own that holds its caller's pid: the
// tasks it makes copy that context, so erlang.self() answers the caller in
// every step of them; and nothing a job sets leaks into another (a job may
// start from inside a task's done callback, which runs in that task's
// context).
class JobContext {
public:
    JobContext(PyObject* var, PyObject* caller) : ctx_(PyRef::steal(PyContext_New())) {
        if (!ctx_ || PyContext_Enter(ctx_.get()) < 0) {
            ctx_.reset();
            PyErr_Clear();
            return;
        }
        PyRef token = caller != nullptr ? PyRef::steal(PyContextVar_Set(var, caller)) : PyRef();
        if (!token) PyErr_Clear();
    }
    JobContext(const JobContext&) = delete;
    JobContext& operator=(const JobContext&) = delete;
    ~JobContext() {
        if (!ctx_) return;
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);  // the job's own error, if any, stays
        if (PyContext_Exit(ctx_.get()) < 0) PyErr_Clear();
        PyErr_Restore(type, value, tb);
    }

private:
    PyRef ctx_;
};

bool is_awaitable(PyObject* value) {
    if (PyCoro_CheckExact(value)) return true;
    PyAsyncMethods* am = Py_TYPE(value)->tp_as_async;
    return am != nullptr && am->am_await != nullptr;
}

}  // namespace

LoopDriver::LoopDriver(EventLoop& loop) : loop_(loop), runner_(main_interpreter(), std::weak_ptr<Context>(), 256) {}

std::unique_ptr<LoopDriver> LoopDriver::create(EventLoop& loop, int wake_fd, std::string* error) {
    std::unique_ptr<LoopDriver> driver(new LoopDriver(loop));
    if (!driver->init(wake_fd, error)) return nullptr;
    return driver;
}

bool LoopDriver::init(int wake_fd, std::string* error) {
    auto fail = [error] {
        *error = take_python_error_text();
        return false;
    };
    wake_def.ml_meth = wake_entry;
    done_def.ml_meth = done_entry;
    PyRef asyncio = PyRef::steal(PyImport_ImportModule("asyncio"));
    if (!asyncio) return fail();
    loop_obj_ = PyRef::steal(PyObject_CallMethod(asyncio.get(), "new_event_loop", nullptr));
    if (!loop_obj_) return fail();
    // Code that asks for "the" event loop on this thread gets this one.
    PyRef set = PyRef::steal(PyObject_CallMethod(asyncio.get(), "set_event_loop", "O", loop_obj_.get()));
    if (!set) return fail();
    // The capsule owns the link: tasks can keep the callbacks (and so the
    // capsule) alive after this driver is gone, and must then find nobody.
    auto* link = new Link{this};
    PyRef capsule = PyRef::steal(PyCapsule_New(link, kCapsuleName, [](PyObject* cap) {
        delete static_cast<Link*>(PyCapsule_GetPointer(cap, kCapsuleName));
    }));
    if (!capsule) {
        delete link;
        return fail();
    }
    link_ = link;
    wake_fn_ = PyRef::steal(PyCFunction_New(&wake_def, capsule.get()));
    done_fn_ = PyRef::steal(PyCFunction_New(&done_def, capsule.get()));
    ensure_future_ = PyRef::steal(PyObject_GetAttrString(asyncio.get(), "ensure_future"));
    if (!wake_fn_ || !done_fn_ || !ensure_future_) return fail();
#if PY_VERSION_HEX >= 0x030C0000
    // Eager tasks (3.12+) run a coroutine at once up to its first real
    // suspension: one that never suspends is answered without a trip
    // through the loop's ready queue.
    task_type_ = PyRef::steal(PyObject_GetAttrString(asyncio.get(), "Task"));
    eager_kwargs_ = PyRef::steal(Py_BuildValue("{sOsO}", "loop", loop_obj_.get(), "eager_start", Py_True));
    if (!task_type_ || !eager_kwargs_) return fail();
#endif
    PyRef globals = run_embedded_source(kShutdownSource);
    if (!globals) return fail();
    cancel_tasks_fn_ = PyRef::borrow(PyDict_GetItemString(globals.get(), "cancel_tasks"));
    close_fn_ = PyRef::borrow(PyDict_GetItemString(globals.get(), "close"));
    if (!cancel_tasks_fn_ || !close_fn_) {
        *error = "loop shutdown functions missing";
        return false;
    }
    // asyncio's base loop keeps ready callbacks in `_ready`, a deque. Without
    // it (another loop class) we never spin.
    ready_ = PyRef::steal(PyObject_GetAttrString(loop_obj_.get(), "_ready"));
    if (!ready_) PyErr_Clear();
    wake_fd_ = wake_fd;
    PyRef added = PyRef::steal(PyObject_CallMethod(loop_obj_.get(), "add_reader", "iO", wake_fd, wake_fn_.get()));
    if (!added) return fail();
    return true;
}

LoopDriver::~LoopDriver() {
    if (link_ != nullptr) link_->driver = nullptr;
    abandon_live_tasks();
    if (loop_obj_) {
        PyRef closed = PyRef::steal(PyObject_CallMethod(loop_obj_.get(), "close", nullptr));
        if (!closed) PyErr_Clear();
    }
    runner_.clear();
}

void LoopDriver::run() {
    while (!loop_.stopping()) {
        PyRef ran = PyRef::steal(PyObject_CallMethod(loop_obj_.get(), "run_forever", nullptr));
        if (!ran) report_loop_error();
        PyRef closed = PyRef::steal(PyObject_CallMethod(loop_obj_.get(), "is_closed", nullptr));
        if (!closed || PyObject_IsTrue(closed.get()) != 0) {
            // Someone closed our loop (or Python is failing): it cannot run
            // again, so the EventLoop stops and its owner restarts it.
            if (!closed) report_loop_error();
            loop_.stop(nullptr);
            return;
        }
    }
}

void LoopDriver::request_stop() {
    PyRef stopped = PyRef::steal(PyObject_CallMethod(loop_obj_.get(), "stop", nullptr));
    if (!stopped) PyErr_Clear();
}

void LoopDriver::shutdown() {
    PyRef removed = PyRef::steal(PyObject_CallMethod(loop_obj_.get(), "remove_reader", "i", wake_fd_));
    if (!removed) PyErr_Clear();
    PyRef closed = PyRef::steal(PyObject_CallMethod(loop_obj_.get(), "is_closed", nullptr));
    bool open = closed && PyObject_IsTrue(closed.get()) == 0;
    PyErr_Clear();
    if (open) {
        PyRef done = PyRef::steal(PyObject_CallFunction(cancel_tasks_fn_.get(), "Od", loop_obj_.get(), kShutdownWaitSeconds));
        if (!done) report_loop_error();
    }
    // Answered before anything else can take time.
    abandon_live_tasks();
    if (open) {
        PyRef done = PyRef::steal(PyObject_CallFunction(close_fn_.get(), "Od", loop_obj_.get(), kShutdownWaitSeconds));
        if (!done) report_loop_error();
    }
    PyErr_Clear();
}

void LoopDriver::abandon_live_tasks() {
    std::vector<Live> left;
    for (auto& [id, live] : live_) left.push_back(std::move(live));
    live_.clear();
    ids_.clear();
    for (Live& live : left) {
        PyRef removed = PyRef::steal(PyObject_CallMethod(live.task.get(), "remove_done_callback", "O", done_fn_.get()));
        if (!removed) PyErr_Clear();
        // Done, its callback not run yet: its own answer. Otherwise stopped.
        PyRef done = PyRef::steal(PyObject_CallMethod(live.task.get(), "done", nullptr));
        if (done && PyObject_IsTrue(done.get()) == 1) {
            complete(*live.job, live.task.get());
        } else {
            PyErr_Clear();
            RunResult stopped{RunResult::Failure, atoms::event_loop_stopped};
            finish(*live.job, stopped);
        }
    }
}

bool LoopDriver::nothing_ready() const {
    if (!ready_) return false;
    Py_ssize_t n = PyObject_Length(ready_.get());
    if (n < 0) PyErr_Clear();
    return n == 0;
}

void LoopDriver::start(std::unique_ptr<LoopJob>&& job) {
    job->writes_at_start = relayed_writes_so_far();
    RequestScope scope(job->req.get());  // erlang.self() in the code it runs at once
    const ErlangTypes& types = main_interpreter()->types();
    PyRef caller = PyRef::steal(make_term_object(types.pid, job->req->caller.pid));
    if (!caller) PyErr_Clear();
    JobContext context(types.caller_var, caller.get());  // ... and in the tasks it makes
    if (job->op == LoopOp::Exec || job->op == LoopOp::Eval) {
        RunResult result = runner_.run(*job->req);
        finish(*job, result);
        return;
    }
    start_call(std::move(job));
}

void LoopDriver::start_call(std::unique_ptr<LoopJob>&& job) {
    Request& req = *job->req;
    RunResult error;
    // Held while we look: a lookup can run Python (a key's __eq__), during
    // which a context may stop and drop its namespace.
    std::vector<PyRef> held;
    std::vector<PyObject*> lookup;
    held.reserve(job->lookup.size());
    lookup.reserve(job->lookup.size());
    for (auto& env : job->lookup) {
        PyObject* dict = env->namespace_dict();
        if (dict == nullptr) {
            error = runner_.python_error(req);
            finish(*job, error);
            return;
        }
        held.push_back(PyRef::borrow(dict));
        lookup.push_back(dict);
    }
    PyRef fn = runner_.resolve(req, lookup, &error);
    if (!fn) {
        // The name may well be defined in an env the loop cannot look into.
        if (job->foreign_env && is_name_error(req.env.get(), error))
            error = RunResult{RunResult::Failure, atoms::env_wrong_interpreter};
        finish(*job, error);
        return;
    }
    PyRef value = runner_.call_function(req, fn.get(), &error);
    if (!value) {
        finish(*job, error);
        return;
    }
    if (!is_awaitable(value.get())) {
        RunResult result = runner_.result_of(req, value.release());
        finish(*job, result);
        return;
    }
    if (!start_task(job, value.get())) {
        error = runner_.python_error(req);
        finish(*job, error);
    }
}

bool LoopDriver::start_task(std::unique_ptr<LoopJob>& job, PyObject* awaitable) {
    PyRef task;
    if (task_type_ && PyCoro_CheckExact(awaitable)) {
        PyRef args = PyRef::steal(PyTuple_Pack(1, awaitable));
        if (!args) return false;
        task = PyRef::steal(PyObject_Call(task_type_.get(), args.get(), eager_kwargs_.get()));
    } else if (PyCoro_CheckExact(awaitable)) {
        task = PyRef::steal(PyObject_CallMethod(loop_obj_.get(), "create_task", "O", awaitable));
    } else {
        PyRef args = PyRef::steal(PyTuple_Pack(1, awaitable));
        PyRef kwargs = PyRef::steal(Py_BuildValue("{sO}", "loop", loop_obj_.get()));
        if (!args || !kwargs) return false;
        task = PyRef::steal(PyObject_Call(ensure_future_.get(), args.get(), kwargs.get()));
    }
    if (!task) return false;
    PyRef done = PyRef::steal(PyObject_CallMethod(task.get(), "done", nullptr));
    if (!done) return false;
    if (PyObject_IsTrue(done.get())) {  // an eager task that never suspended
        complete(*job, task.get());
        return true;
    }
    PyRef added = PyRef::steal(PyObject_CallMethod(task.get(), "add_done_callback", "O", done_fn_.get()));
    if (!added) {
        // Without its callback the task would never answer: stop it.
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyRef cancelled = PyRef::steal(PyObject_CallMethod(task.get(), "cancel", nullptr));
        if (!cancelled) PyErr_Clear();
        PyErr_Restore(type, value, tb);
        return false;
    }
    std::uint64_t id = job->id;
    ids_.emplace(task.get(), id);
    live_.emplace(id, Live{std::move(task), std::move(job)});
    return true;
}

void LoopDriver::cancel(std::uint64_t id) {
    auto it = live_.find(id);
    if (it == live_.end()) return;
    PyRef cancelled = PyRef::steal(PyObject_CallMethod(it->second.task.get(), "cancel", nullptr));
    if (!cancelled) PyErr_Clear();
}

void LoopDriver::task_done(PyObject* task) {
    auto id = ids_.find(task);  // one entry per add_done_callback, so per call
    if (id == ids_.end()) return;  // answered at shutdown already
    auto it = live_.find(id->second);
    ids_.erase(id);
    if (it == live_.end()) return;
    Live live = std::move(it->second);
    live_.erase(it);
    complete(*live.job, live.task.get());
    loop_.linger(*this);
}

void LoopDriver::complete(LoopJob& job, PyObject* task) {
    Request& req = *job.req;
    RunResult result;
    PyRef cancelled = PyRef::steal(PyObject_CallMethod(task, "cancelled", nullptr));
    if (cancelled && PyObject_IsTrue(cancelled.get()) && loop_.stopping()) {
        result = RunResult{RunResult::Failure, atoms::event_loop_stopped};
    } else if (!cancelled) {
        result = runner_.python_error(req);
    } else {
        result = runner_.result_of(req, PyObject_CallMethod(task, "result", nullptr));
    }
    finish(job, result);
}

void LoopDriver::finish(LoopJob& job, RunResult& result) {
    loop_.count_done();
    // Interrupted because the loop was stuck at stop: the stop is the answer.
    if (result.kind == RunResult::PythonError && result.interrupted && loop_.stopping())
        result = RunResult{RunResult::Failure, atoms::event_loop_stopped};
    Request& req = *job.req;
    if (job.op == LoopOp::Spawn) {
        if (result.kind != RunResult::Ok) report_spawn_failure(job, result);
        return;
    }
    if (job.op == LoopOp::Task && !loop_.claim_reply(job.id)) return;  // its caller gave up
    // Something printed through py_relay meanwhile, perhaps this job's
    // tasks (or their executor threads): the answer takes the text's way,
    // so it cannot overtake it.
    if (relayed_writes_so_far() != job.writes_at_start) req.printed = true;
    req.answer(result);
}

void LoopDriver::report_spawn_failure(LoopJob& job, const RunResult& result) {
    Request& req = *job.req;
    ErlNifEnv* env = req.env.get();
    ERL_NIF_TERM keys[] = {enif_make_atom(env, "caller"), atoms::module, atoms::function, enif_make_atom(env, "reason"),
                           enif_make_atom(env, "traceback")};
    ERL_NIF_TERM values[] = {make_pid(env, req.caller), req.args[0], req.args[1], result.value,
                             result.kind == RunResult::PythonError ? result.traceback : atoms::undefined};
    ERL_NIF_TERM details;
    if (!enif_make_map_from_arrays(env, keys, values, 5, &details)) return;
    req.env.send(loop_.owner(), enif_make_tuple2(env, atoms::spawn_task_failed, details));
}

void LoopDriver::report_loop_error() {
    if (!PyErr_Occurred()) return;
    auto now = std::chrono::steady_clock::now();
    if (now - reports_since_ > std::chrono::seconds(1)) {
        reports_since_ = now;
        reports_ = 0;
    }
    if (++reports_ > kMaxReportsPerSecond) {
        PyErr_Clear();
        return;
    }
    MsgEnv msg;
    if (!msg) {
        PyErr_Clear();
        return;
    }
    PythonError err = take_python_error(msg.get(), nullptr);
    msg.send(loop_.owner(), enif_make_tuple3(msg.get(), enif_make_atom(msg.get(), "loop_error"), err.reason, err.traceback));
}

// The loop calls these; C++ exceptions must not cross into Python.
PyObject* LoopDriver::wake_entry(PyObject* self, PyObject*) {
    auto* link = static_cast<Link*>(PyCapsule_GetPointer(self, kCapsuleName));
    if (link == nullptr) return nullptr;
    LoopDriver* driver = link->driver;
    if (driver == nullptr) Py_RETURN_NONE;
    try {
        driver->loop_.on_wake(*driver);
    } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
    } catch (...) {
        PyErr_SetString(PyExc_RuntimeError, "erlang_python: internal error in the event loop");
        return nullptr;
    }
    if (PyErr_Occurred()) PyErr_Clear();  // every job has had its error answered
    Py_RETURN_NONE;
}

PyObject* LoopDriver::done_entry(PyObject* self, PyObject* task) {
    auto* link = static_cast<Link*>(PyCapsule_GetPointer(self, kCapsuleName));
    if (link == nullptr) return nullptr;
    LoopDriver* driver = link->driver;
    if (driver == nullptr) Py_RETURN_NONE;
    try {
        driver->task_done(task);
    } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
    } catch (...) {
        PyErr_SetString(PyExc_RuntimeError, "erlang_python: internal error in the event loop");
        return nullptr;
    }
    if (PyErr_Occurred()) PyErr_Clear();
    Py_RETURN_NONE;
}

}  // namespace ep
