// Owned references to Python objects.
#pragma once

#include <Python.h>

#include <utility>

#include "runtime/gil_check.h"

namespace ep {

// A strong reference that is released when it goes out of scope. Like every
// PyObject*, it may only be created, copied or destroyed by a thread holding
// the GIL of the interpreter that owns the object.
class PyRef {
public:
    PyRef() = default;
    PyRef(const PyRef&) = delete;
    PyRef& operator=(const PyRef&) = delete;
    PyRef(PyRef&& other) noexcept : obj_(std::exchange(other.obj_, nullptr)) {}
    PyRef& operator=(PyRef&& other) noexcept {
        if (this != &other) {
            drop(std::exchange(obj_, std::exchange(other.obj_, nullptr)));
        }
        return *this;
    }
    ~PyRef() { drop(obj_); }

    // Takes over a new reference (the result of most C-API calls).
    static PyRef steal(PyObject* obj) { return PyRef(obj); }
    // Adds a reference to a borrowed pointer.
    static PyRef borrow(PyObject* obj) {
        Py_XINCREF(obj);
        return PyRef(obj);
    }

    PyObject* get() const { return obj_; }
    explicit operator bool() const { return obj_ != nullptr; }
    // Gives the reference away, e.g. to PyTuple_SET_ITEM which steals it.
    PyObject* release() { return std::exchange(obj_, nullptr); }
    void reset() { drop(std::exchange(obj_, nullptr)); }

private:
    explicit PyRef(PyObject* obj) : obj_(obj) {}
    static void drop(PyObject* obj) {
        if (obj == nullptr) return;
        if (holds_gil()) Py_DECREF(obj);
        else note_gil_violation("PyRef");
    }
    PyObject* obj_ = nullptr;
};

}  // namespace ep
