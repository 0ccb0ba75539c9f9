#include "context/request_runner.h"

#include <utility>
#include <vector>

#include "context/env.h"
#include "erl/erl_terms.h"
#include "context/handle.h"
#include "convert/buffer_export.h"
#include "convert/py_to_term.h"
#include "convert/term_to_py.h"
#include "runtime/py_errors.h"

namespace ep {

namespace {
// {ok, V}; `deferred_maps` when V holds maps the receiver builds.
RunResult ok_result(ErlNifEnv* env, ERL_NIF_TERM value, bool deferred_maps) {
    RunResult result{RunResult::Ok, make_ok(env, value)};
    result.deferred_maps = deferred_maps;
    return result;
}

// Binds eval's Locals as globals for the expression's duration, so that
// comprehensions, lambdas and generator expressions see them on every Python
// version (a separate locals mapping hides them from nested scopes), then
// puts back whatever those names held before.
class ScopedBindings {
public:
    ScopedBindings(PyObject* globals, PyObject* bindings) : globals_(globals) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(bindings, &pos, &key, &value)) {
            PyRef previous = PyRef::borrow(PyDict_GetItemWithError(globals, key));
            if (!previous && PyErr_Occurred()) return;
            saved_.emplace_back(PyRef::borrow(key), std::move(previous));
            if (PyDict_SetItem(globals, key, value) < 0) return;
        }
        ok_ = true;
    }
    ScopedBindings(const ScopedBindings&) = delete;
    ScopedBindings& operator=(const ScopedBindings&) = delete;
    ~ScopedBindings() { restore(); }

    bool ok() const { return ok_; }

    // Keeps a pending exception (the expression's) across the restore.
    void restore() {
        if (saved_.empty()) return;
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
            int rc = it->second ? PyDict_SetItem(globals_, it->first.get(), it->second.get())
                                : PyDict_DelItem(globals_, it->first.get());
            if (rc < 0) PyErr_Clear();
        }
        saved_.clear();
        PyErr_Restore(type, value, tb);
    }

private:
    PyObject* globals_;
    std::vector<std::pair<PyRef, PyRef>> saved_;
    bool ok_ = false;
};

bool source_of(ErlNifEnv* env, ERL_NIF_TERM term, std::string_view* out) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, term, &bin)) return false;
    *out = std::string_view(reinterpret_cast<const char*>(bin.data), bin.size);
    return true;
}
}  // namespace

RequestRunner::RequestRunner(std::shared_ptr<Interpreter> interp, std::weak_ptr<Context> context,
                             std::size_t code_cache_size)
    : interp_(std::move(interp)),
      scope_{interp_, std::move(context), &atom_names_},
      code_(code_cache_size),
      streams_(*this) {}

void RequestRunner::clear() {
    streams_.clear();
    code_.clear();
    atom_names_.clear();
    flush_globals_.reset();
}

void RequestRunner::flush_pending_interrupt() {
    if (!flush_globals_) flush_globals_ = PyRef::steal(PyDict_New());
    PyObject* code = flush_globals_ ? code_.get("None", Py_eval_input) : nullptr;
    PyRef result = code ? PyRef::steal(PyEval_EvalCode(code, flush_globals_.get(), flush_globals_.get())) : PyRef();
    if (!result) PyErr_Clear();
}

RunResult RequestRunner::run(Request& req) {
    switch (req.op) {
    case Op::Exec:
    case Op::Eval:
    case Op::Call: {
        if (req.ns->interpreter() != interp_) return failure(atoms::env_wrong_interpreter);
        // Held for the whole request: a worker env can be used by another
        // context than its own, and the owner stopping meanwhile empties and
        // drops its namespace.
        PyRef globals = PyRef::borrow(req.ns->namespace_dict());
        if (!globals) return python_error(req);
        if (req.op == Op::Exec) return exec(req, globals.get());
        if (req.op == Op::Eval) return eval(req, globals.get());
        return call(req, globals.get());
    }
    case Op::GetAttr: return get_attr(req);
    case Op::CallMethod: return call_method(req);
    case Op::ToTerm: return to_term(req);
    case Op::Buffer: return buffer(req);
    case Op::StreamStart:
    case Op::StreamStep:
    case Op::StreamClose: break;  // StreamDriver's
    }
    return failure(atoms::badarg);
}

RunResult RequestRunner::python_error(Request& req) {
    PythonError err = take_python_error(req.env.get(), interp_->types().interrupted);
    return RunResult{RunResult::PythonError, err.reason, err.traceback, err.interrupted};
}

RunResult RequestRunner::result_of(Request& req, PyObject* value) {
    PyRef owned = PyRef::steal(value);
    if (!owned) return python_error(req);
    ERL_NIF_TERM term;
    bool deferred = false;
    if (!py_to_term(owned.get(), req.env.get(), scope_, &term, &deferred)) return failure(term);
    return ok_result(req.env.get(), term, deferred);
}


RunResult RequestRunner::exec(Request& req, PyObject* globals) {
    std::string_view source;
    if (!source_of(req.env.get(), req.args[0], &source)) return failure(enif_make_tuple2(req.env.get(), atoms::badarg, atoms::code));
    // Held: a nested request (during an Erlang callback) may evict it.
    PyRef code = PyRef::borrow(code_.get(source, Py_file_input));
    if (!code) return python_error(req);
    PyRef result = PyRef::steal(PyEval_EvalCode(code.get(), globals, globals));
    if (!result) return python_error(req);
    return success(atoms::ok);
}

RunResult RequestRunner::eval(Request& req, PyObject* globals) {
    ErlNifEnv* env = req.env.get();
    std::string_view source;
    if (!source_of(env, req.args[0], &source)) return failure(enif_make_tuple2(env, atoms::badarg, atoms::expr));
    if (!enif_is_map(env, req.args[1])) return failure(enif_make_tuple2(env, atoms::badarg, atoms::locals));
    PyRef code = PyRef::borrow(code_.get(source, Py_eval_input));  // held, as in exec
    if (!code) return python_error(req);
    size_t nlocals = 0;
    enif_get_map_size(env, req.args[1], &nlocals);
    if (nlocals == 0) return result_of(req, PyEval_EvalCode(code.get(), globals, globals));
    ERL_NIF_TERM reason;
    PyRef locals = term_to_py(env, req.args[1], scope_, &reason);
    if (!locals) return failure(reason);
    ScopedBindings bindings(globals, locals.get());
    if (!bindings.ok()) return python_error(req);
    PyObject* value = PyEval_EvalCode(code.get(), globals, globals);
    bindings.restore();
    return result_of(req, value);
}

PyRef RequestRunner::resolve(Request& req, std::span<PyObject* const> lookup, RunResult* error) {
    ErlNifEnv* env = req.env.get();
    ERL_NIF_TERM reason;
    PyRef fname = name_to_py(env, req.args[1], scope_, &reason);
    if (!fname) {
        *error = failure(enif_make_tuple2(env, atoms::badarg, atoms::function));
        return PyRef();
    }
    // "path.join" on module os walks attributes; plain names skip the split.
    PyRef parts;
    PyObject* first = fname.get();
    if (PyUnicode_FindChar(first, '.', 0, PyUnicode_GET_LENGTH(first), 1) >= 0) {
        PyRef dot = PyRef::steal(PyUnicode_FromStringAndSize(".", 1));
        parts = dot ? PyRef::steal(PyUnicode_Split(first, dot.get(), -1)) : PyRef();
        if (!parts) {
            *error = python_error(req);
            return PyRef();
        }
        first = PyList_GET_ITEM(parts.get(), 0);
    }
    PyRef target;
    if (req.args[0] == atoms::main_module) {
        // The caller's namespaces first, then the real __main__, then builtins.
        for (PyObject* ns : lookup) {
            target = PyRef::borrow(PyDict_GetItemWithError(ns, first));
            if (target || PyErr_Occurred()) break;
        }
        if (!target && !PyErr_Occurred()) {
            PyObject* main = PyImport_AddModule("__main__");
            target = main ? PyRef::steal(PyObject_GetAttr(main, first)) : PyRef();
            if (!target && PyErr_ExceptionMatches(PyExc_AttributeError)) {
                PyErr_Clear();
                PyObject* builtins = PyEval_GetBuiltins();
                target = PyRef::borrow(PyDict_GetItemWithError(builtins, first));
                if (!target && !PyErr_Occurred())
                    PyErr_Format(PyExc_NameError, "name '%U' is not defined", first);
            }
        }
    } else {
        PyRef mname = name_to_py(env, req.args[0], scope_, &reason);
        if (!mname) {
            *error = failure(enif_make_tuple2(env, atoms::badarg, atoms::module));
            return PyRef();
        }
        PyRef module = PyRef::steal(PyImport_GetModule(mname.get()));
        if (!module && !PyErr_Occurred()) module = PyRef::steal(PyImport_Import(mname.get()));
        target = module ? PyRef::steal(PyObject_GetAttr(module.get(), first)) : PyRef();
    }
    for (Py_ssize_t i = 1; target && parts && i < PyList_GET_SIZE(parts.get()); ++i)
        target = PyRef::steal(PyObject_GetAttr(target.get(), PyList_GET_ITEM(parts.get(), i)));
    if (!target) *error = python_error(req);
    return target;
}

bool RequestRunner::call_args(Request& req, ERL_NIF_TERM args, ERL_NIF_TERM kwargs, PyRef* tuple, PyRef* dict,
                              RunResult* error) {
    ErlNifEnv* env = req.env.get();
    unsigned n = 0;
    if (!enif_get_list_length(env, args, &n)) {
        *error = failure(enif_make_tuple2(env, atoms::badarg, atoms::args));
        return false;
    }
    ERL_NIF_TERM reason;
    PyRef list = term_to_py(env, args, scope_, &reason);
    if (!list) {
        *error = failure(reason);
        return false;
    }
    *tuple = PyRef::steal(PyList_AsTuple(list.get()));
    if (!*tuple) {
        *error = python_error(req);
        return false;
    }
    if (!enif_is_map(env, kwargs)) {
        *error = failure(enif_make_tuple2(env, atoms::badarg, atoms::kwargs));
        return false;
    }
    size_t nkw = 0;
    enif_get_map_size(env, kwargs, &nkw);
    if (nkw == 0) return true;
    *dict = term_to_py(env, kwargs, scope_, &reason);
    if (!*dict) {
        *error = failure(reason);
        return false;
    }
    return true;
}

PyRef RequestRunner::call_function(Request& req, PyObject* fn, RunResult* error) {
    PyRef args, kwargs;
    if (!call_args(req, req.args[2], req.args[3], &args, &kwargs, error)) return PyRef();
    PyRef value = PyRef::steal(PyObject_Call(fn, args.get(), kwargs.get()));
    if (!value) *error = python_error(req);
    return value;
}

RunResult RequestRunner::call(Request& req, PyObject* globals) {
    RunResult error;
    PyRef fn = resolve(req, std::span<PyObject* const>(&globals, 1), &error);
    if (!fn) return error;
    PyRef value = call_function(req, fn.get(), &error);
    if (!value) return error;
    return result_of(req, value.release());
}

RunResult RequestRunner::get_attr(Request& req) {
    ERL_NIF_TERM reason;
    PyRef name = name_to_py(req.env.get(), req.args[0], scope_, &reason);
    if (!name) return failure(reason);
    return result_of(req, PyObject_GetAttr(req.target->object(), name.get()));
}

RunResult RequestRunner::call_method(Request& req) {
    ERL_NIF_TERM reason;
    PyRef name = name_to_py(req.env.get(), req.args[0], scope_, &reason);
    if (!name) return failure(reason);
    PyRef method = PyRef::steal(PyObject_GetAttr(req.target->object(), name.get()));
    if (!method) return python_error(req);
    RunResult error;
    PyRef args, kwargs;
    if (!call_args(req, req.args[1], req.args[2], &args, &kwargs, &error)) return error;
    return result_of(req, PyObject_Call(method.get(), args.get(), kwargs.get()));
}

RunResult RequestRunner::to_term(Request& req) {
    ERL_NIF_TERM term;
    bool deferred = false;
    if (!py_to_term(req.target->object(), req.env.get(), scope_, &term, &deferred, Unwrap::TopLevel))
        return failure(term);
    return ok_result(req.env.get(), term, deferred);
}

RunResult RequestRunner::buffer(Request& req) {
    ERL_NIF_TERM term;
    if (!buffer_to_term(req.target->object(), req.env.get(), &term)) return failure(term);
    return ok_result(req.env.get(), term, false);
}

}  // namespace ep
