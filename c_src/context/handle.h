// An opaque Python object held from Erlang (a value with no Erlang form).
#pragma once

#include <Python.h>

#include <atomic>
#include <cstddef>
#include <memory>

#include "runtime/interpreter.h"

namespace ep {

class Context;

// Operations on a handle run on the context that made it. Dropping the last
// Erlang reference queues the object for release on its interpreter's owner
// thread, like an env.
class Handle {
public:
    // Takes over the reference `obj`.
    Handle(PyObject* obj, std::shared_ptr<Interpreter> interp, std::weak_ptr<Context> context);
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle();

    // Borrowed; only under interpreter()'s GIL.
    PyObject* object() const { return obj_; }
    std::shared_ptr<Context> context() const { return context_.lock(); }
    const std::shared_ptr<Interpreter>& interpreter() const { return interp_; }

    static std::size_t alive() { return alive_.load(std::memory_order_relaxed); }

private:
    PyObject* obj_;
    std::shared_ptr<Interpreter> interp_;
    std::weak_ptr<Context> context_;
    static std::atomic<std::size_t> alive_;
};

}  // namespace ep
