// Python calling registered Erlang functions (erlang.call) and the replies
// coming back.
//
// A call is sent as {'$py_callback', Id, Name, Args, DeferredMaps, Caller} to the
// py_callbacks process, which runs the function in a new process and
// answers through py_nif:callback_reply(Id, Result). The caller waits: a
// context thread keeps serving its own queue meanwhile (so the function can
// call back into the same context, to any depth), any other Python thread
// just sleeps without the GIL.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "erl/msg_env.h"

namespace ep {

class CallbackWaiter {
public:
    CallbackWaiter(std::uint64_t id, PyInterpreterState* interp, const ErlNifPid& dispatcher)
        : id_(id), interp_(interp), dispatcher_(dispatcher) {}

    std::uint64_t id() const { return id_; }
    PyInterpreterState* interpreter() const { return interp_; }
    // The py_callbacks process the call was sent to.
    const ErlNifPid& dispatcher() const { return dispatcher_; }

    // Any thread: the reply (copied into this waiter) or an abort.
    void complete(ERL_NIF_TERM result);
    void abort();
    bool done() const;
    bool aborted() const;
    // Blocks (the caller holds no GIL) until done.
    void wait();
    // Called on completion, after the state is set (the waiting context's poke).
    void on_complete(std::function<void()> wake);

    ErlNifEnv* env() const { return env_.get(); }
    ERL_NIF_TERM result() const { return result_; }

private:
    std::uint64_t id_;
    PyInterpreterState* interp_;
    ErlNifPid dispatcher_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    bool aborted_ = false;
    MsgEnv env_;
    ERL_NIF_TERM result_ = 0;
    std::function<void()> wake_;
};

// Load time: the resource type through which the NIF watches py_callbacks
// (if that process dies, the calls it had not answered are answered here).
bool open_callback_watch_type(ErlNifEnv* env);

// Registered function names, as Python sees them (erlang.<name>).
void set_callback_name(std::string name, bool registered);
bool callback_name_registered(std::string_view name);

// GIL held. Converts `obj` for a message into `env`, in the calling
// interpreter; false with a Python exception set (`what` names the caller).
bool python_to_message(PyObject* obj, ErlNifEnv* env, ERL_NIF_TERM* out, bool* deferred_maps, const char* what);

// GIL held (of the calling interpreter). Sends the call; nullptr with a
// Python exception set when it cannot be sent.
std::shared_ptr<CallbackWaiter> send_callback(PyObject* name, PyObject* args, const ErlNifPid* caller);

// From py_nif:callback_reply/2. False when nobody waits for `id` any more.
bool deliver_callback_reply(std::uint64_t id, ERL_NIF_TERM result);

// The process running the Erlang function of call `id` (py_nif:callback_begin/1),
// until the call is answered. Requests it makes run nested in the waiting context.
void callback_started(std::uint64_t id, const ErlNifPid& runner);
// The call `pid` is running an Erlang function for, or 0.
std::uint64_t callback_run_by(const ErlNifPid& pid);

// The calling Python gave up on `id` (timeout, stop): forget it and ask
// py_callbacks to stop the process running it. GIL not needed.
void abandon_callback(std::uint64_t id);

// Forgets every registered name (py_callbacks starting afresh).
void reset_callback_names();

// Wakes every call waiting in `interp` with an abort (the interpreter ends).
void abort_callbacks(PyInterpreterState* interp);

}  // namespace ep
