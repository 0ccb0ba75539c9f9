#include "runtime/py_errors.h"

#include <cstring>
#include <string_view>

#include "convert/atom_budget.h"
#include "erl/erl_terms.h"
#include "runtime/py_ref.h"

namespace ep {
namespace {

PyRef take_exception() {
#if PY_VERSION_HEX >= 0x030C0000
    return PyRef::steal(PyErr_GetRaisedException());
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != nullptr && value != nullptr) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return PyRef::steal(value);
#endif
}

ERL_NIF_TERM utf8_term(ErlNifEnv* env, PyObject* text) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(text, &size);
    if (data == nullptr) {
        PyErr_Clear();
        return make_binary(env, "<unprintable>");
    }
    return make_binary(env, std::string_view(data, static_cast<size_t>(size)));
}

// The exception's class name as an atom, as Python's own messages show it
// (the bare name). A name that cannot become an atom (too long, or new
// atoms from Python are spent) is given as a binary instead.
ERL_NIF_TERM type_term(ErlNifEnv* env, PyTypeObject* type) {
    const char* name = type->tp_name;
    if (const char* dot = std::strrchr(name, '.')) name = dot + 1;
    std::string_view text(name);
    ERL_NIF_TERM atom;
    if (make_atom_from_python(env, text, &atom)) return atom;
    return make_binary(env, text);
}

ERL_NIF_TERM message_term(ErlNifEnv* env, PyObject* exc) {
    PyRef text = PyRef::steal(PyObject_Str(exc));
    if (!text) {
        PyErr_Clear();
        return make_binary(env, "<str() of the exception failed>");
    }
    return utf8_term(env, text.get());
}

ERL_NIF_TERM traceback_term(ErlNifEnv* env, PyObject* exc) {
    PyRef module = PyRef::steal(PyImport_ImportModule("traceback"));
    PyRef lines = module ? PyRef::steal(PyObject_CallMethod(module.get(), "format_exception", "O", exc)) : PyRef();
    PyRef empty = PyRef::steal(PyUnicode_FromString(""));
    PyRef text = lines && empty ? PyRef::steal(PyUnicode_Join(empty.get(), lines.get())) : PyRef();
    if (!text) {
        PyErr_Clear();
        return make_binary(env, "");
    }
    return utf8_term(env, text.get());
}

}  // namespace

std::string take_python_error_text() {
    PyRef exc = take_exception();
    PyRef text = PyRef::steal(exc ? PyObject_Str(exc.get()) : nullptr);
    const char* utf8 = text ? PyUnicode_AsUTF8(text.get()) : nullptr;
    std::string out = utf8 ? utf8 : "unknown error";
    PyErr_Clear();
    return out;
}

PythonError take_python_error(ErlNifEnv* env, PyObject* interrupted_type) {
    PyRef exc = take_exception();
    if (!exc) {
        return PythonError{enif_make_tuple2(env, atoms::python_error, make_binary(env, "no exception set")),
                           make_binary(env, ""), false};
    }
    bool interrupted = interrupted_type != nullptr && PyObject_TypeCheck(exc.get(), reinterpret_cast<PyTypeObject*>(interrupted_type));
    ERL_NIF_TERM reason = enif_make_tuple2(env, type_term(env, Py_TYPE(exc.get())), message_term(env, exc.get()));
    return PythonError{reason, traceback_term(env, exc.get()), interrupted};
}

}  // namespace ep
