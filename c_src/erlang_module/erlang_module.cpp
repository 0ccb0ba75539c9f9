#include "erlang_module/erlang_module.h"

#include <cstring>

#include "erlang_module/buffer_object.h"
#include "erlang_module/erlang_functions.h"

namespace ep {
namespace {

// erlang.Pid and erlang.Ref: an immutable copy of one Erlang term, kept in an
// environment of its own so it stays valid whatever thread or process made it.
struct TermObject {
    PyObject_HEAD
    ErlNifEnv* env;
    ERL_NIF_TERM term;
};

void term_dealloc(PyObject* self) {
    auto* obj = reinterpret_cast<TermObject*>(self);
    PyTypeObject* type = Py_TYPE(self);
    if (obj->env) enif_free_env(obj->env);
    type->tp_free(self);
    Py_DECREF(type);
}

PyObject* term_repr(PyObject* self) {
    auto* obj = reinterpret_cast<TermObject*>(self);
    char buf[128];
    enif_snprintf(buf, sizeof buf, "%T", obj->term);
    return PyUnicode_FromFormat("%s(%s)", _PyType_Name(Py_TYPE(self)), buf);
}

Py_hash_t term_hash(PyObject* self) {
    auto* obj = reinterpret_cast<TermObject*>(self);
    auto h = static_cast<Py_hash_t>(enif_hash(ERL_NIF_PHASH2, obj->term, 0));
    return h == -1 ? -2 : h;
}

PyObject* term_richcompare(PyObject* a, PyObject* b, int op) {
    if (Py_TYPE(a) != Py_TYPE(b)) Py_RETURN_NOTIMPLEMENTED;
    int c = enif_compare(reinterpret_cast<TermObject*>(a)->term, reinterpret_cast<TermObject*>(b)->term);
    Py_RETURN_RICHCOMPARE(c, 0, op);
}

PyType_Slot term_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(term_dealloc)},
    {Py_tp_repr, reinterpret_cast<void*>(term_repr)},
    {Py_tp_hash, reinterpret_cast<void*>(term_hash)},
    {Py_tp_richcompare, reinterpret_cast<void*>(term_richcompare)},
    {0, nullptr},
};

constexpr unsigned long kTermFlags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION;

PyType_Spec pid_spec = {"erlang.Pid", sizeof(TermObject), 0, kTermFlags, term_slots};
PyType_Spec ref_spec = {"erlang.Ref", sizeof(TermObject), 0, kTermFlags, term_slots};

// erlang.Atom: a str that converts to an atom instead of a binary.
PyObject* atom_repr(PyObject* self) {
    PyObject* text = PyUnicode_Type.tp_repr(self);
    if (text == nullptr) return nullptr;
    PyObject* out = PyUnicode_FromFormat("Atom(%U)", text);
    Py_DECREF(text);
    return out;
}

PyType_Slot atom_slots[] = {
    {Py_tp_repr, reinterpret_cast<void*>(atom_repr)},
    {Py_tp_doc, const_cast<char*>("An Erlang atom. Converts to an atom; other str values convert to binaries.")},
    {0, nullptr},
};

PyType_Spec atom_spec = {"erlang.Atom", 0, 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE, atom_slots};

ErlangModuleState* state_of(PyObject* module) { return static_cast<ErlangModuleState*>(PyModule_GetState(module)); }

int add_type(PyObject* module, PyType_Spec* spec, PyObject* base, PyTypeObject** slot) {
    PyObject* type = PyType_FromModuleAndSpec(module, spec, base);
    if (type == nullptr) return -1;
    *slot = reinterpret_cast<PyTypeObject*>(type);
    return PyModule_AddObjectRef(module, strchr(spec->name, '.') + 1, type);
}

int erlang_exec(PyObject* module) {
    ErlangModuleState* st = state_of(module);
    if (add_type(module, &pid_spec, nullptr, &st->pid_type) < 0) return -1;
    if (add_type(module, &ref_spec, nullptr, &st->ref_type) < 0) return -1;
    if (add_type(module, &atom_spec, reinterpret_cast<PyObject*>(&PyUnicode_Type), &st->atom_type) < 0) return -1;
    if (add_type(module, &buffer_spec, nullptr, &st->buffer_type) < 0) return -1;
    st->interrupted = PyErr_NewExceptionWithDoc(
        "erlang.Interrupted",
        "Raised inside Python code whose Erlang caller timed out, or whose context is stopping. "
        "A BaseException, so `except Exception` does not swallow it.",
        PyExc_BaseException, nullptr);
    if (st->interrupted == nullptr) return -1;
    if (PyModule_AddObjectRef(module, "Interrupted", st->interrupted) < 0) return -1;
    st->error = PyErr_NewExceptionWithDoc(
        "erlang.Error",
        "A registered Erlang function failed. str() is the formatted Erlang reason; .kind is "
        "'error', 'exit' or 'throw'; .reason the reason itself (None if it has no Python form).",
        PyExc_Exception, nullptr);
    if (st->error == nullptr) return -1;
    st->caller_var = PyContextVar_New("erlang_python_caller", nullptr);
    if (st->caller_var == nullptr) return -1;
    return PyModule_AddObjectRef(module, "Error", st->error);
}

int erlang_traverse(PyObject* module, visitproc visit, void* arg) {
    ErlangModuleState* st = state_of(module);
    Py_VISIT(st->pid_type);
    Py_VISIT(st->ref_type);
    Py_VISIT(st->atom_type);
    Py_VISIT(st->buffer_type);
    Py_VISIT(st->interrupted);
    Py_VISIT(st->error);
    Py_VISIT(st->caller_var);
    return 0;
}

int erlang_clear(PyObject* module) {
    ErlangModuleState* st = state_of(module);
    Py_CLEAR(st->pid_type);
    Py_CLEAR(st->ref_type);
    Py_CLEAR(st->atom_type);
    Py_CLEAR(st->buffer_type);
    Py_CLEAR(st->interrupted);
    Py_CLEAR(st->error);
    Py_CLEAR(st->caller_var);
    return 0;
}

void erlang_free(void* module) { erlang_clear(static_cast<PyObject*>(module)); }

PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, reinterpret_cast<void*>(erlang_exec)},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "erlang",
    "Erlang terms and the Erlang VM, seen from Python (erlang_python).",
    sizeof(ErlangModuleState),
    erlang_module_functions,
    module_slots,
    erlang_traverse,
    erlang_clear,
    erlang_free,
};

PyObject* init_erlang_module() { return PyModuleDef_Init(&module_def); }

}  // namespace

bool register_erlang_module() { return PyImport_AppendInittab("erlang", init_erlang_module) == 0; }

const ErlangModuleState* erlang_module_state(PyObject* module) {
    if (!PyModule_Check(module) || PyModule_GetDef(module) != &module_def) return nullptr;
    return state_of(module);
}

PyObject* make_term_object(PyTypeObject* type, ERL_NIF_TERM term) {
    ErlNifEnv* own = enif_alloc_env();
    if (own == nullptr) return PyErr_NoMemory();
    PyObject* self = type->tp_alloc(type, 0);
    if (self == nullptr) {
        enif_free_env(own);
        return nullptr;
    }
    auto* obj = reinterpret_cast<TermObject*>(self);
    obj->env = own;
    obj->term = enif_make_copy(own, term);
    return self;
}

ERL_NIF_TERM term_object_value(PyObject* obj, ErlNifEnv* env) {
    return enif_make_copy(env, reinterpret_cast<TermObject*>(obj)->term);
}

}  // namespace ep
