// A process-bound namespace: the Python dict a process's code runs in.
#pragma once

#include <Python.h>

#include <atomic>
#include <cstddef>
#include <memory>

#include "runtime/interpreter.h"

namespace ep {

class Context;

// An env belongs to one interpreter and is used through one context. The
// dict is made lazily on the context thread, so creating an env from Erlang
// never needs the GIL. When the last owner lets go (the Erlang process died,
// and no request still uses it) the dict goes to its interpreter's release
// queue, where the owner thread clears it so `__del__` runs promptly.
class Env {
public:
    Env(std::shared_ptr<Interpreter> interp, std::weak_ptr<Context> context);
    Env(const Env&) = delete;
    Env& operator=(const Env&) = delete;
    ~Env();

    // GIL of interpreter() held. The namespace, made on first use; nullptr
    // with a Python exception set on failure.
    PyObject* namespace_dict();

    // GIL of interpreter() held: empties and drops the namespace now (its
    // context is stopping). The env stays valid and empty.
    void release_namespace();

    std::shared_ptr<Context> context() const { return context_.lock(); }
    const std::shared_ptr<Interpreter>& interpreter() const { return interp_; }

    // Envs that exist right now, for py:info().
    static std::size_t alive() { return alive_.load(std::memory_order_relaxed); }

private:
    std::shared_ptr<Interpreter> interp_;
    std::weak_ptr<Context> context_;
    PyObject* dict_ = nullptr;  // owned; touched only under interp_'s GIL (or in ~Env, by the last owner)
    static std::atomic<std::size_t> alive_;
};

}  // namespace ep
