#include "callbacks.h"

#include <atomic>
#include <set>
#include <unordered_map>
#include <vector>

#include "atoms.h"
#include "context.h"
#include "current_call.h"
#include "erl_terms.h"
#include "interpreter.h"
#include "py_ref.h"
#include "py_to_term.h"

namespace ep {

CurrentCall& current_call() {
    thread_local CurrentCall call;
    return call;
}

namespace {

std::mutex registry_mutex;
std::unordered_map<std::uint64_t, std::weak_ptr<CallbackWaiter>> waiting;
std::atomic<std::uint64_t> last_id{0};

std::mutex names_mutex;
std::set<std::string, std::less<>> names;

void forget(std::uint64_t id) {
    std::lock_guard lock(registry_mutex);
    waiting.erase(id);
}

// A conversion failure (reason term) as a Python TypeError.
void raise_unconvertible(const char* what, ERL_NIF_TERM reason) {
    char text[256];
    enif_snprintf(text, sizeof text, "%T", reason);
    PyErr_Format(PyExc_TypeError, "%s: cannot be sent to Erlang: %s", what, text);
}

}  // namespace

void CallbackWaiter::complete(ERL_NIF_TERM result) {
    std::function<void()> wake;
    {
        std::lock_guard lock(mutex_);
        if (done_) return;
        result_ = env_.copy(result);
        done_ = true;
        wake = wake_;
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
        wake = wake_;
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

void set_callback_name(std::string name, bool registered) {
    std::lock_guard lock(names_mutex);
    if (registered) names.insert(std::move(name));
    else names.erase(name);
}

bool callback_name_registered(std::string_view name) {
    std::lock_guard lock(names_mutex);
    return names.find(name) != names.end();
}

std::shared_ptr<CallbackWaiter> send_callback(PyObject* name, PyObject* args) {
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &size) : nullptr;
    if (utf8 == nullptr) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "erlang.call: the function name must be a str");
        return nullptr;
    }
    std::shared_ptr<Interpreter> interp = Interpreter::current();
    if (!interp) {
        PyErr_SetString(PyExc_RuntimeError, "erlang.call: this interpreter is not erlang_python's");
        return nullptr;
    }
    MsgEnv env;
    std::weak_ptr<Context> ctx;
    if (current_call().context != nullptr) ctx = current_call().context->weak_from_this();
    ConvertScope scope{interp, ctx, nullptr};
    ERL_NIF_TERM args_term;
    bool deferred = false;
    PyRef list = PyRef::steal(PySequence_List(args));
    if (!list) return nullptr;
    if (!py_to_term(list.get(), env.get(), scope, &args_term, &deferred)) {
        raise_unconvertible("erlang.call arguments", args_term);
        return nullptr;
    }
    ErlNifPid dispatcher;
    if (!enif_whereis_pid(nullptr, atoms::py_callbacks, &dispatcher)) {
        PyErr_SetString(PyExc_RuntimeError, "erlang.call: the erlang_python application is not running");
        return nullptr;
    }
    auto waiter = std::make_shared<CallbackWaiter>(last_id.fetch_add(1) + 1, interp->state());
    {
        std::lock_guard lock(registry_mutex);
        waiting.emplace(waiter->id(), waiter);
    }
    ERL_NIF_TERM msg = enif_make_tuple5(env.get(), atoms::py_callback_tag, enif_make_uint64(env.get(), waiter->id()),
                                        make_binary(env.get(), {utf8, static_cast<size_t>(size)}), args_term,
                                        deferred ? atoms::true_ : atoms::false_);
    if (!env.send(dispatcher, msg)) {
        forget(waiter->id());
        PyErr_SetString(PyExc_RuntimeError, "erlang.call: the py_callbacks process is gone");
        return nullptr;
    }
    return waiter;
}

bool deliver_callback_reply(std::uint64_t id, ERL_NIF_TERM result) {
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
