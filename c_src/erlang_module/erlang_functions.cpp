// The functions of the Python `erlang` module: self(), send(), call() and
// the module __getattr__ that turns registered Erlang function names into
// callables.
#include "erlang_module/erlang_functions.h"

#include <vector>


#include "erlang_module/callbacks.h"
#include "context/context.h"
#include "context/current_call.h"
#include "erl/erl_terms.h"
#include "erl/msg_env.h"
#include "erlang_module/erlang_module.h"
#include "runtime/interpreter.h"
#include "runtime/py_ref.h"
#include "convert/py_to_term.h"
#include "erlang_module/output.h"
#include "erlang_module/python_logging.h"
#include "context/request.h"
#include "convert/term_to_py.h"

namespace ep {
namespace {

const ErlangModuleState* state_or_raise(PyObject* module) {
    const ErlangModuleState* st = erlang_module_state(module);
    if (st == nullptr) PyErr_SetString(PyExc_RuntimeError, "erlang: module state missing");
    return st;
}

}  // namespace

PyObject* calling_process(const ErlangModuleState* st) {
    if (const Request* req = current_call().request) return make_term_object(st->pid_type, req->caller.pid);
    PyObject* pid = nullptr;
    if (st->caller_var == nullptr) return nullptr;  // the module is being torn down
    if (PyContextVar_Get(st->caller_var, nullptr, &pid) < 0) return nullptr;
    return pid;
}

bool calling_pid(const ErlangModuleState* st, ErlNifPid* pid) {
    if (const Request* req = current_call().request) {
        *pid = req->caller;
        return true;
    }
    if (st == nullptr || st->caller_var == nullptr) return false;
    PyObject* obj = nullptr;
    if (PyContextVar_Get(st->caller_var, nullptr, &obj) < 0 || obj == nullptr) return false;
    PyRef held = PyRef::steal(obj);
    // Python code can set the variable to anything (contextvars is
    // public): only an erlang.Pid names a caller.
    if (!PyObject_TypeCheck(obj, st->pid_type)) return false;
    MsgEnv scratch;
    return scratch && enif_get_local_pid(scratch.get(), term_object_value(obj, scratch.get()), pid);
}

namespace {

// erlang.self(): the Erlang process whose call this thread is running (or,
// on the event loop, for which the running task was started).
PyObject* erlang_self(PyObject* module, PyObject*) {
    const ErlangModuleState* st = state_or_raise(module);
    if (st == nullptr) return nullptr;
    PyObject* pid = calling_process(st);
    if (pid == nullptr && !PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError,
                        "erlang.self(): no Erlang process is calling on this thread (only a context's "
                        "own thread runs calls, and the event loop's tasks)");
    return pid;
}

// The process registered as `name` (an erlang.Atom or a str), into *pid.
// False when none is; with a Python exception set when `name` is no name.
bool registered_process(const ErlangModuleState* st, PyObject* name, ErlNifPid* pid, const char* what) {
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &size) : nullptr;
    if (utf8 == nullptr) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "%s: the name must be an erlang.Atom or a str", what);
        return false;
    }
    (void)st;
    if (size == 0 || size > 255 * 4) return false;
    // An atom that does not exist names no process: never make one here
    // (the atom table is not Python's to fill). OTP 25 finds existing atoms
    // by Latin-1 name only, so the name goes as ATOM_UTF8_EXT through a
    // "safe" binary_to_term, which refuses to make atoms.
    std::vector<unsigned char> ext{131, 118, static_cast<unsigned char>(size >> 8), static_cast<unsigned char>(size)};
    ext.insert(ext.end(), utf8, utf8 + size);
    MsgEnv env;
    ERL_NIF_TERM atom;
    if (!env || enif_binary_to_term(env.get(), ext.data(), ext.size(), &atom, ERL_NIF_BIN2TERM_SAFE) == 0 ||
        !enif_is_atom(env.get(), atom))
        return false;
    return enif_whereis_pid(nullptr, atom, pid) != 0;
}

// erlang.whereis(name): the erlang.Pid registered as `name`, or None.
PyObject* erlang_whereis(PyObject* module, PyObject* name) {
    const ErlangModuleState* st = state_or_raise(module);
    if (st == nullptr) return nullptr;
    ErlNifPid pid;
    if (!registered_process(st, name, &pid, "erlang.whereis")) {
        if (PyErr_Occurred()) return nullptr;
        Py_RETURN_NONE;
    }
    return make_term_object(st->pid_type, pid.pid);
}

// erlang.send(dest, term): sends the converted term to an erlang.Pid or to
// the process registered under an erlang.Atom; a dead local process (or a
// name nobody holds) raises ProcessLookupError.
PyObject* erlang_send_impl(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
    const ErlangModuleState* st = state_or_raise(module);
    if (st == nullptr) return nullptr;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "erlang.send(dest, term) takes 2 arguments");
        return nullptr;
    }
    const bool by_name = Py_IS_TYPE(args[0], st->atom_type);
    if (!by_name && !PyObject_TypeCheck(args[0], st->pid_type)) {
        PyErr_SetString(PyExc_TypeError, "erlang.send: the destination must be an erlang.Pid or an erlang.Atom");
        return nullptr;
    }
    MsgEnv env;
    ERL_NIF_TERM term;
    bool deferred = false;
    if (!python_to_message(args[1], env.get(), &term, &deferred, "erlang.send")) return nullptr;
    ErlNifPid named;
    if (by_name && !registered_process(st, args[0], &named, "erlang.send")) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_ProcessLookupError, "erlang.send: no process is registered as %R", args[0]);
        return nullptr;
    }
    ERL_NIF_TERM pid_term = by_name ? make_pid(env.get(), named) : term_object_value(args[0], env.get());
    ErlNifPid to;
    if (!deferred && enif_get_local_pid(env.get(), pid_term, &to)) {
        if (!env.send(to, term)) {
            PyErr_Format(PyExc_ProcessLookupError, "erlang.send: %R is not alive", args[0]);
            return nullptr;
        }
        Py_RETURN_NONE;
    }
    // A remote pid, or maps only a scheduler may build: py_relay finishes
    // the term and sends it on.
    ErlNifPid relay;
    if (!enif_whereis_pid(nullptr, atoms::py_relay, &relay) ||
        !env.send(relay, enif_make_tuple3(env.get(), atoms::py_send_tag, pid_term, term))) {
        PyErr_SetString(PyExc_RuntimeError, "erlang.send: the erlang_python application is not running");
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject* erlang_send(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
    try {
        return erlang_send_impl(module, args, nargs);
    } catch (...) {
        return PyErr_NoMemory();
    }
}

// Turns the reply of a callback into a return value or an exception.
PyObject* callback_result(const ErlangModuleState* st, CallbackWaiter& waiter) {
    ErlNifEnv* env = waiter.env();
    int arity = 0;
    const ERL_NIF_TERM* items = nullptr;
    if (!enif_get_tuple(env, waiter.result(), &arity, &items)) {
        PyErr_SetString(PyExc_RuntimeError, "erlang.call: malformed reply");
        return nullptr;
    }
    std::shared_ptr<Interpreter> interp = Interpreter::current();
    if (!interp) {
        PyErr_SetString(PyExc_RuntimeError, "erlang.call: this interpreter is ending");
        return nullptr;
    }
    ConvertScope scope{interp, default_context_for(*interp), nullptr};
    ERL_NIF_TERM reason;
    if (arity == 2 && items[0] == atoms::ok) {
        PyRef value = term_to_py(env, items[1], scope, &reason);
        if (!value && !PyErr_Occurred()) {
            char text[256];
            enif_snprintf(text, sizeof text, "%T", reason);
            PyErr_Format(PyExc_TypeError, "erlang.call: the result has no Python form: %s", text);
        }
        return value.release();
    }
    if (arity == 4 && items[0] == atoms::error) {
        // {error, Class, Reason, Formatted}: erlang.Error(Formatted) with
        // .kind and .reason (None when the reason has no Python form).
        PyRef message = term_to_py(env, items[3], scope, &reason);
        PyRef kind = message ? term_to_py(env, items[1], scope, &reason) : PyRef();
        PyRef why = kind ? term_to_py(env, items[2], scope, &reason) : PyRef();
        if (!why) {
            PyErr_Clear();
            why = PyRef::borrow(Py_None);
        }
        PyRef exc = message ? PyRef::steal(PyObject_CallOneArg(st->error, message.get())) : PyRef();
        if (!exc || PyObject_SetAttrString(exc.get(), "kind", kind ? kind.get() : Py_None) < 0 ||
            PyObject_SetAttrString(exc.get(), "reason", why.get()) < 0)
            return nullptr;
        PyErr_SetObject(st->error, exc.get());
        return nullptr;
    }
    PyErr_SetString(PyExc_RuntimeError, "erlang.call: malformed reply");
    return nullptr;
}

// erlang.call(name, *args)
PyObject* erlang_call_impl(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
    const ErlangModuleState* st = state_or_raise(module);
    if (st == nullptr) return nullptr;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "erlang.call(name, *args) needs a name");
        return nullptr;
    }
    PyRef rest = PyRef::steal(PyTuple_New(nargs - 1));
    if (!rest) return nullptr;
    for (Py_ssize_t i = 1; i < nargs; ++i) PyTuple_SET_ITEM(rest.get(), i - 1, Py_NewRef(args[i]));
    // The Erlang function runs with the group leader of the process whose
    // call this is, so what it prints shows where that caller's does.
    ErlNifPid caller;
    bool has_caller = calling_pid(st, &caller);
    if (PyErr_Occurred()) return nullptr;
    std::shared_ptr<CallbackWaiter> waiter = send_callback(args[0], rest.get(), has_caller ? &caller : nullptr);
    if (!waiter) return nullptr;
    bool gave_up = false;
    Context* ctx = current_call().context;
    if (ctx != nullptr) {
        // The context thread: keep serving our own queue while we wait.
        gave_up = !ctx->wait_for_callback(*waiter);
    } else {
        Py_BEGIN_ALLOW_THREADS
        waiter->wait();
        Py_END_ALLOW_THREADS
    }
    if (gave_up || waiter->aborted()) {
        abandon_callback(waiter->id());  // no one waits: stop the Erlang side too
        if (ctx != nullptr) ctx->flush_pending_interrupt();  // ours is the one to raise
        if (!PyErr_Occurred()) PyErr_SetNone(st->interrupted);
        return nullptr;
    }
    return callback_result(st, *waiter);
}

// No C++ exception may unwind through CPython's frames.
PyObject* erlang_call(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
    try {
        return erlang_call_impl(module, args, nargs);
    } catch (...) {
        return PyErr_NoMemory();
    }
}

// The callable erlang.<name>: self is (module, name).
PyObject* call_named(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    try {
        PyObject* module = PyTuple_GET_ITEM(self, 0);
        std::vector<PyObject*> all(static_cast<size_t>(nargs) + 1);
        all[0] = PyTuple_GET_ITEM(self, 1);
        for (Py_ssize_t i = 0; i < nargs; ++i) all[static_cast<size_t>(i) + 1] = args[i];
        return erlang_call_impl(module, all.data(), nargs + 1);
    } catch (...) {
        return PyErr_NoMemory();
    }
}

PyMethodDef call_named_def = {"registered_function", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(call_named)),
                              METH_FASTCALL, "An Erlang function registered with py:register_function."};

// Module __getattr__ (PEP 562): only registered names exist, so libraries
// probing attributes see AttributeError for anything else.
PyObject* erlang_getattr(PyObject* module, PyObject* name) {
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &size) : nullptr;
    if (utf8 == nullptr || !callback_name_registered({utf8, static_cast<size_t>(size)})) {
        PyErr_Clear();
        PyErr_Format(PyExc_AttributeError, "module 'erlang' has no attribute %R", name);
        return nullptr;
    }
    PyRef self = PyRef::steal(PyTuple_Pack(2, module, name));
    return self ? PyCFunction_NewEx(&call_named_def, self.get(), nullptr) : nullptr;
}

}  // namespace

PyMethodDef erlang_module_functions[] = {
    {"self", erlang_self, METH_NOARGS, "self() -> the erlang.Pid of the Erlang process whose call runs on this thread"},
    {"send", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(erlang_send)), METH_FASTCALL,
     "send(dest, term): send a message to an Erlang process (an erlang.Pid, or an erlang.Atom it is registered "
     "as); ProcessLookupError if it is not alive"},
    {"whereis", erlang_whereis, METH_O, "whereis(name): the erlang.Pid registered as name, or None"},
    {"call", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(erlang_call)), METH_FASTCALL,
     "call(name, *args): call the Erlang function registered as name; erlang.Error if it fails"},
    {"_log", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(erlang_log)), METH_FASTCALL,
     "_log(levelno, name, message, pathname, lineno, funcname): used by erlang.LogHandler"},
    {"_write", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(erlang_write)), METH_FASTCALL,
     "_write(is_stderr, text) -> bool: used by sys.stdout and sys.stderr to reach the calling process"},
    {"__getattr__", erlang_getattr, METH_O, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace ep
