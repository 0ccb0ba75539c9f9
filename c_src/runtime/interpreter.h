// One Python interpreter (the main one or a subinterpreter) as the NIF sees
// it: its identity, the objects our `erlang` module made in it, and the queue
// through which other threads hand it references to release.
#pragma once

#include <Python.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace ep {

class Context;

// Types from the `erlang` module as created in one interpreter. Borrowed
// pointers kept alive by `module`; only read while holding that
// interpreter's GIL.
struct ErlangTypes {
    PyObject* module = nullptr;  // owned
    PyTypeObject* pid = nullptr;
    PyTypeObject* ref = nullptr;
    PyTypeObject* atom = nullptr;
    PyTypeObject* buffer = nullptr;
    PyObject* interrupted = nullptr;  // exception type raised on timeout/stop
    PyObject* caller_var = nullptr;   // see ErlangModuleState::caller_var
};

enum class ReleaseKind : std::uint8_t {
    Decref,     // drop one reference
    ClearDict,  // an env namespace: clear it first so objects in it die now (design.md fact 13)
};

class Interpreter {
public:
    Interpreter(PyInterpreterState* state, bool is_main);
    Interpreter(const Interpreter&) = delete;
    Interpreter& operator=(const Interpreter&) = delete;

    // Makes `interp` findable through current(); once, by whoever made it.
    static void enlist(const std::shared_ptr<Interpreter>& interp);
    // GIL held: the Interpreter of the calling thread's interpreter, or
    // nullptr if it is not one of ours (or has been closed).
    static std::shared_ptr<Interpreter> current();

    PyInterpreterState* state() const { return state_; }
    std::int64_t id() const { return id_; }
    bool is_main() const { return is_main_; }

    // Any thread. Hands over one owned reference; the owner thread releases it
    // under this interpreter's GIL. After close() the pointer is dropped
    // without touching it: the interpreter that owned it is gone.
    void release(PyObject* obj, ReleaseKind kind) noexcept;

    // Owner thread, GIL held: releases everything queued so far.
    std::size_t drain_releases();
    bool has_pending_releases() const { return pending_.load(std::memory_order_acquire) != 0; }
    // Handed over and not yet released (or dropped): queued, or being
    // drained right now. Any thread.
    std::uint64_t releases_unfinished() const {
        return queued_.load(std::memory_order_acquire) - finished_.load(std::memory_order_acquire);
    }
    // The sum of releases_unfinished() over every interpreter of ours alive,
    // for py_nif:runtime_info(): zero once every dead env and handle is gone.
    static std::uint64_t releases_unfinished_everywhere();

    // Called (outside any lock of ours) when the queue goes from empty to
    // non-empty, so the owner can come and drain it.
    void set_waker(std::function<void()> waker);

    // The interpreter is being destroyed: drop queued and future releases.
    void close();

    // The context for objects made on threads that are not a context's own
    // (Python threads): a subinterpreter's only context, or for the main
    // interpreter a running worker context.
    void offer_default_context(const std::weak_ptr<Context>& ctx);
    std::weak_ptr<Context> default_context() const;

    // Set when the interpreter starts ending: no new Erlang calls from it.
    void set_closing() { closing_.store(true, std::memory_order_release); }
    bool closing() const { return closing_.load(std::memory_order_acquire); }

    // Loads our `erlang` module into this interpreter. GIL held. False with a
    // Python exception set on failure.
    bool load_erlang_module();
    const ErlangTypes& types() const { return types_; }
    // GIL held, before the interpreter ends.
    void clear_erlang_module();

    // GIL held: empties an env namespace newest-name-first (so each
    // __del__ still finds the globals defined before its object).
    static void empty_namespace(PyObject* dict);

private:
    struct Item {
        PyObject* obj;
        ReleaseKind kind;
    };

    PyInterpreterState* state_;
    std::int64_t id_;
    bool is_main_;
    ErlangTypes types_;

    mutable std::mutex default_mutex_;
    std::weak_ptr<Context> default_context_;
    std::atomic<bool> closing_{false};

    std::mutex mutex_;
    std::vector<Item> items_;
    bool closed_ = false;
    std::shared_ptr<std::function<void()>> waker_;
    std::atomic<std::size_t> pending_{0};
    std::atomic<std::uint64_t> queued_{0};    // ever handed over
    std::atomic<std::uint64_t> finished_{0};  // ever released, or dropped at close
};

}  // namespace ep
