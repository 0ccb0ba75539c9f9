#include "erlang_module/callbacks.h"

#include <atomic>
#include <set>
#include <unordered_map>
#include <vector>

#include "erl/atoms.h"
#include "context/context.h"
#include "context/current_call.h"
#include "erl/erl_terms.h"
#include "erl/resource_type.h"
#include "runtime/interpreter.h"
#include "runtime/py_ref.h"
#include "convert/py_to_term.h"

namespace ep {

CurrentCall& current_call() {
    thread_local CurrentCall call;
    return call;
}

std::weak_ptr<Context> default_context_for(Interpreter& interp) {
    if (current_call().context != nullptr) return current_call().context->weak_from_this();
    return interp.default_context();
}

namespace {

std::mutex registry_mutex;
std::unordered_map<std::uint64_t, std::weak_ptr<CallbackWaiter>> waiting;
std::atomic<std::uint64_t> last_id{0};

std::mutex names_mutex;
std::set<std::string, std::less<>> names;

// Processes running Erlang functions: pid term (a local pid is an
// immediate, the same in every env) to call id, and back.
std::mutex runners_mutex;
std::unordered_map<ERL_NIF_TERM, std::uint64_t> runner_of;
std::unordered_map<std::uint64_t, ERL_NIF_TERM> runner_by_id;
std::atomic<std::size_t> runners{0};

void forget(std::uint64_t id) {
    std::lock_guard lock(registry_mutex);
    waiting.erase(id);
}

// The NIF watches each py_callbacks process it sends calls to: a monitor,
// held by a resource, whose down callback answers every call still waiting
// on that process (the process may have died with the call in its mailbox,
// or with the runner's exit unhandled). A watch lives until its monitor
// fires: dropping the resource earlier would remove the monitor with it.
ErlNifResourceType* watch_type = nullptr;
std::mutex watch_mutex;
void* watched = nullptr;  // the watch of the current py_callbacks, or nullptr
ErlNifPid watched_pid;

void forget_runner(std::uint64_t id);

void dispatcher_down(ErlNifEnv* env, void* obj, ErlNifPid* pid, ErlNifMonitor*) {
    {
        std::lock_guard lock(watch_mutex);
        if (watched == obj) watched = nullptr;
    }
    std::vector<std::shared_ptr<CallbackWaiter>> orphans;
    {
        std::lock_guard lock(registry_mutex);
        for (auto it = waiting.begin(); it != waiting.end();) {
            auto waiter = it->second.lock();
            if (waiter && waiter->dispatcher().pid == pid->pid) {
                orphans.push_back(std::move(waiter));
                it = waiting.erase(it);
            } else {
                ++it;
            }
        }
    }
    if (!orphans.empty()) {
        ERL_NIF_TERM answer = enif_make_tuple4(
            env, atoms::error, atoms::exit, enif_make_atom(env, "py_callbacks_exited"),
            make_binary(env, "erlang_python's py_callbacks process exited before the Erlang function answered"));
        for (auto& waiter : orphans) {
            forget_runner(waiter->id());  // its runner went with py_callbacks
            waiter->complete(answer);
        }
    }
    enif_release_resource(obj);
}

// Any thread. True when `pid` is watched (it was alive when the watch began).
bool watch_dispatcher(const ErlNifPid& pid) {
    std::lock_guard lock(watch_mutex);
    if (watched != nullptr && watched_pid.pid == pid.pid) return true;
    void* watch = enif_alloc_resource(watch_type, 1);
    if (watch == nullptr) return false;
    if (enif_monitor_process(nullptr, watch, &pid, nullptr) != 0) {
        enif_release_resource(watch);
        return false;
    }
    // An earlier watch is left to its monitor, which has fired or will.
    watched = watch;
    watched_pid = pid;
    return true;
}

void forget_runner(std::uint64_t id) {
    std::lock_guard lock(runners_mutex);
    auto it = runner_by_id.find(id);
    if (it == runner_by_id.end()) return;
    runner_of.erase(it->second);
    runner_by_id.erase(it);
    runners.store(runner_by_id.size(), std::memory_order_release);
}

}  // namespace

void CallbackWaiter::complete(ERL_NIF_TERM result) {
    std::function<void()> wake;
    {
        std::lock_guard lock(mutex_);
        if (done_) return;
        result_ = env_.copy(result);
        done_ = true;
        wake = std::move(wake_);  // done_ is set once: nothing needs it after
    }
    cv_.notify_all();
    if (wake) wake();
}

void CallbackWaiter::abort() {
    std::function<void()> wake;
    {
        std::lock_guard lock(mutex_);
        if (done_) return;
        done_ = aborted_ = true;
        wake = std::move(wake_);
    }
    cv_.notify_all();
    if (wake) wake();
}

bool CallbackWaiter::done() const {
    std::lock_guard lock(mutex_);
    return done_;
}

bool CallbackWaiter::aborted() const {
    std::lock_guard lock(mutex_);
    return aborted_;
}

void CallbackWaiter::wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return done_; });
}

void CallbackWaiter::on_complete(std::function<void()> wake) {
    std::lock_guard lock(mutex_);
    wake_ = std::move(wake);
}

bool open_callback_watch_type(ErlNifEnv* env) {
    watch_type = open_resource_type(env, "ep_callbacks_watch", nullptr, dispatcher_down);
    return watch_type != nullptr;
}

void set_callback_name(std::string name, bool registered) {
    std::lock_guard lock(names_mutex);
    if (registered) names.insert(std::move(name));
    else names.erase(name);
}

bool callback_name_registered(std::string_view name) {
    std::lock_guard lock(names_mutex);
    return names.find(name) != names.end();
}

bool python_to_message(PyObject* obj, ErlNifEnv* env, ERL_NIF_TERM* out, bool* deferred_maps, const char* what) {
    std::shared_ptr<Interpreter> interp = Interpreter::current();
    if (!interp || interp->closing()) {
        PyErr_Format(PyExc_RuntimeError, "%s: this interpreter is ending", what);
        return false;
    }
    ConvertScope scope{interp, default_context_for(*interp), nullptr};
    if (py_to_term(obj, env, scope, out, deferred_maps)) return true;
    if (!PyErr_Occurred()) {
        char text[256];
        int arity = 0;
        const ERL_NIF_TERM* reason = nullptr;
        if (enif_get_tuple(env, *out, &arity, &reason) && arity == 2 && reason[0] == atoms::duplicate_key) {
            enif_snprintf(text, sizeof text, "%T", reason[1]);
            PyErr_Format(PyExc_ValueError, "%s: two keys of one dict become the same Erlang term %s", what, text);
        } else {
            enif_snprintf(text, sizeof text, "%T", *out);
            PyErr_Format(PyExc_TypeError, "%s: cannot be sent to Erlang: %s", what, text);
        }
    }
    return false;
}

std::shared_ptr<CallbackWaiter> send_callback(PyObject* name, PyObject* args, const ErlNifPid* caller) {
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &size) : nullptr;
    if (utf8 == nullptr) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "erlang.call: the function name must be a str");
        return nullptr;
    }
    if (current_call().on_event_loop) {
        PyErr_SetString(PyExc_RuntimeError,
                        "erlang.call would block the event loop: run it in an executor, e.g. "
                        "await asyncio.get_running_loop().run_in_executor(None, erlang.call, 'name', arg)");
        return nullptr;
    }
    if (current_call().no_callbacks) {
        PyErr_SetString(PyExc_RuntimeError,
                        "erlang.call: not possible here (a __del__ run while releasing objects, or a context "
                        "that is stopping)");
        return nullptr;
    }
    MsgEnv env;
    ERL_NIF_TERM args_term;
    bool deferred = false;
    PyRef list = PyRef::steal(PySequence_List(args));
    if (!list || !python_to_message(list.get(), env.get(), &args_term, &deferred, "erlang.call")) return nullptr;
    ErlNifPid dispatcher;
    if (!enif_whereis_pid(nullptr, atoms::py_callbacks, &dispatcher)) {
        PyErr_SetString(PyExc_RuntimeError, "erlang.call: the erlang_python application is not running");
        return nullptr;
    }
    auto waiter = std::make_shared<CallbackWaiter>(last_id.fetch_add(1) + 1, PyInterpreterState_Get(), dispatcher);
    {
        std::lock_guard lock(registry_mutex);
        waiting.emplace(waiter->id(), waiter);
    }
    if (!watch_dispatcher(dispatcher)) {
        forget(waiter->id());
        PyErr_SetString(PyExc_RuntimeError, "erlang.call: the py_callbacks process is gone");
        return nullptr;
    }
    ERL_NIF_TERM msg = enif_make_tuple6(env.get(), atoms::py_callback_tag, enif_make_uint64(env.get(), waiter->id()),
                                        make_binary(env.get(), {utf8, static_cast<size_t>(size)}), args_term,
                                        deferred ? atoms::true_ : atoms::false_,
                                        caller != nullptr ? make_pid(env.get(), *caller) : atoms::undefined);
    if (!env.send(dispatcher, msg)) {
        forget(waiter->id());
        PyErr_SetString(PyExc_RuntimeError, "erlang.call: the py_callbacks process is gone");
        return nullptr;
    }
    return waiter;
}

void callback_started(std::uint64_t id, const ErlNifPid& runner) {
    std::lock_guard lock(runners_mutex);
    runner_of[runner.pid] = id;
    runner_by_id[id] = runner.pid;
    runners.store(runner_by_id.size(), std::memory_order_release);
}

std::uint64_t callback_run_by(const ErlNifPid& pid) {
    if (runners.load(std::memory_order_acquire) == 0) return 0;  // the common case: no lock
    std::lock_guard lock(runners_mutex);
    auto it = runner_of.find(pid.pid);
    return it == runner_of.end() ? 0 : it->second;
}

void abandon_callback(std::uint64_t id) {
    forget(id);
    forget_runner(id);
    ErlNifPid dispatcher;
    MsgEnv env;
    if (enif_whereis_pid(nullptr, atoms::py_callbacks, &dispatcher))
        env.send(dispatcher, enif_make_tuple2(env.get(), atoms::py_callback_cancel_tag, enif_make_uint64(env.get(), id)));
}

void reset_callback_names() {
    std::lock_guard lock(names_mutex);
    names.clear();
}

bool deliver_callback_reply(std::uint64_t id, ERL_NIF_TERM result) {
    forget_runner(id);
    std::shared_ptr<CallbackWaiter> waiter;
    {
        std::lock_guard lock(registry_mutex);
        auto it = waiting.find(id);
        if (it == waiting.end()) return false;
        waiter = it->second.lock();
        waiting.erase(it);
    }
    if (!waiter) return false;
    waiter->complete(result);
    return true;
}

void abort_callbacks(PyInterpreterState* interp) {
    std::vector<std::shared_ptr<CallbackWaiter>> mine;
    {
        std::lock_guard lock(registry_mutex);
        for (auto it = waiting.begin(); it != waiting.end();) {
            auto waiter = it->second.lock();
            if (waiter && waiter->interpreter() == interp) {
                mine.push_back(std::move(waiter));
                it = waiting.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (auto& waiter : mine) waiter->abort();
}

}  // namespace ep
