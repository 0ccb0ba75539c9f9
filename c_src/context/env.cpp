#include "context/env.h"

#include <utility>

namespace ep {

std::atomic<std::size_t> Env::alive_{0};

Env::Env(std::shared_ptr<Interpreter> interp, std::weak_ptr<Context> context)
    : interp_(std::move(interp)), context_(std::move(context)) {
    alive_.fetch_add(1, std::memory_order_relaxed);
}

Env::~Env() {
    // May run on any thread (often a scheduler), so the dict is never touched
    // here: its interpreter's owner clears and drops it.
    interp_->release(dict_, ReleaseKind::ClearDict);
    alive_.fetch_sub(1, std::memory_order_relaxed);
}

void Env::release_namespace() {
    PyObject* dict = std::exchange(dict_, nullptr);
    if (dict == nullptr) return;
    Interpreter::empty_namespace(dict);
    Py_DECREF(dict);
}

PyObject* Env::namespace_dict() {
    if (dict_ != nullptr) return dict_;
    // Preload code (py:preload, spec §12) leaves its globals in the erlang
    // module; every env made after it starts as a copy of them.
    PyObject* module = interp_->types().module;
    PyObject* base = module != nullptr ? PyDict_GetItemString(PyModule_GetDict(module), "_base_globals") : nullptr;
    PyObject* dict = base != nullptr && PyDict_Check(base) ? PyDict_Copy(base) : PyDict_New();
    if (dict == nullptr) return nullptr;
    PyObject* builtins = PyImport_AddModule("builtins");  // borrowed
    PyObject* name = PyUnicode_FromString("__main__");
    if (builtins == nullptr || name == nullptr || PyDict_SetItemString(dict, "__builtins__", builtins) < 0 ||
        PyDict_SetItemString(dict, "__name__", name) < 0) {
        Py_XDECREF(name);
        Py_DECREF(dict);
        return nullptr;
    }
    Py_DECREF(name);
    dict_ = dict;
    return dict_;
}

}  // namespace ep
