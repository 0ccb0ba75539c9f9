#include "convert/term_to_py.h"

#include <cstring>
#include <vector>

#include "convert/bigint_ext.h"
#include "erl/erl_terms.h"
#include "erlang_module/buffer_object.h"
#include "erlang_module/erlang_module.h"
#include "context/handle.h"
#include "runtime/py_errors.h"
#include "convert/pylong_bytes.h"
#include "nif/isolated_nifs.h"
#include "nif/resources.h"

namespace ep {

PyObject* atom_to_str(ErlNifEnv* env, ERL_NIF_TERM atom) {
    char buf[256];
    int len = enif_get_atom(env, atom, buf, sizeof buf, ERL_NIF_LATIN1);
    if (len > 0) return PyUnicode_DecodeLatin1(buf, len - 1, nullptr);
    // Names beyond Latin-1 (OTP 25 has no UTF-8 enif_get_atom): read them
    // from the external format, ATOM_UTF8_EXT (118) or SMALL_ATOM_UTF8_EXT (119).
    ErlNifBinary ext;
    if (!enif_term_to_binary(env, atom, &ext)) return PyErr_NoMemory();
    PyObject* out = nullptr;
    if (ext.size >= 3 && ext.data[1] == 119) {
        out = PyUnicode_DecodeUTF8(reinterpret_cast<char*>(ext.data) + 3, static_cast<Py_ssize_t>(ext.size - 3), "replace");
    } else if (ext.size >= 4 && ext.data[1] == 118) {
        out = PyUnicode_DecodeUTF8(reinterpret_cast<char*>(ext.data) + 4, static_cast<Py_ssize_t>(ext.size - 4), "replace");
    } else {
        PyErr_SetString(PyExc_ValueError, "unreadable atom");
    }
    enif_release_binary(&ext);
    return out;
}

PyObject* AtomNames::get(ErlNifEnv* env, ERL_NIF_TERM atom) {
    auto it = names_.find(atom);
    if (it != names_.end()) return Py_NewRef(it->second.get());
    PyObject* str = atom_to_str(env, atom);
    if (str == nullptr) return nullptr;
    PyUnicode_InternInPlace(&str);
    if (names_.size() < kLimit) names_.emplace(atom, PyRef::borrow(str));
    return str;
}

namespace {

class TermConverter {
public:
    TermConverter(ErlNifEnv* env, const ConvertScope& scope, ERL_NIF_TERM* reason)
        : env_(env), scope_(scope), reason_(reason) {}

    PyObject* convert(ERL_NIF_TERM term, int depth) {
        if (depth > kMaxNesting) return fail(atoms::nesting_too_deep);
        switch (enif_term_type(env_, term)) {
        case ERL_NIF_TERM_TYPE_ATOM: return atom(term);
        case ERL_NIF_TERM_TYPE_BITSTRING: return binary(term);
        case ERL_NIF_TERM_TYPE_FLOAT: {
            double d = 0;
            enif_get_double(env_, term, &d);
            return check(PyFloat_FromDouble(d));
        }
        case ERL_NIF_TERM_TYPE_INTEGER: return integer(term);
        case ERL_NIF_TERM_TYPE_LIST: return list(term, depth);
        case ERL_NIF_TERM_TYPE_MAP: return map(term, depth);
        case ERL_NIF_TERM_TYPE_PID: return check(make_term_object(scope_.interp->types().pid, term));
        case ERL_NIF_TERM_TYPE_REFERENCE: return reference(term);
        case ERL_NIF_TERM_TYPE_TUPLE: return tuple(term, depth);
        default: return unsupported(term);  // funs and ports have no Python form
        }
    }

private:
    PyObject* fail(ERL_NIF_TERM reason) {
        if (!failed_) *reason_ = reason;
        failed_ = true;
        return nullptr;
    }
    PyObject* unsupported(ERL_NIF_TERM term) { return fail(enif_make_tuple2(env_, atoms::unsupported_term, term)); }
    // Turns a pending Python exception into the failure reason.
    PyObject* check(PyObject* obj) {
        if (obj == nullptr && !failed_) fail(take_python_error(env_, nullptr).reason);
        return obj;
    }

    PyObject* atom(ERL_NIF_TERM term) {
        if (term == atoms::true_) Py_RETURN_TRUE;
        if (term == atoms::false_) Py_RETURN_FALSE;
        if (term == atoms::none || term == atoms::nil || term == atoms::undefined) Py_RETURN_NONE;
        return check(scope_.atom_names ? scope_.atom_names->get(env_, term) : atom_to_str(env_, term));
    }

    PyObject* binary(ERL_NIF_TERM term) {
        ErlNifBinary bin;
        if (!enif_inspect_binary(env_, term, &bin)) return unsupported(term);  // a bitstring
        auto* data = reinterpret_cast<const char*>(bin.data);
        auto size = static_cast<Py_ssize_t>(bin.size);
        PyObject* str = PyUnicode_DecodeUTF8(data, size, nullptr);
        if (str != nullptr) return str;
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return check(nullptr);
        PyErr_Clear();  // not UTF-8: it is bytes
        return check(PyBytes_FromStringAndSize(data, size));
    }

    PyObject* integer(ERL_NIF_TERM term) {
        ErlNifSInt64 i;
        if (enif_get_int64(env_, term, &i)) return check(PyLong_FromLongLong(i));
        ErlNifUInt64 u;
        if (enif_get_uint64(env_, term, &u)) return check(PyLong_FromUnsignedLongLong(u));
        ErlNifBinary ext;
        if (!enif_term_to_binary(env_, term, &ext)) return check(PyErr_NoMemory());
        BigInt big;
        bool ok = decode_bigint_ext({ext.data, ext.size}, &big);
        enif_release_binary(&ext);
        if (!ok) return unsupported(term);
        return check(pylong_from_magnitude(big.magnitude, big.negative));
    }

    PyObject* list(ERL_NIF_TERM term, int depth) {
        unsigned length = 0;
        if (!enif_get_list_length(env_, term, &length)) return fail(atoms::improper_list);
        PyObject* list = check(PyList_New(length));
        if (list == nullptr) return nullptr;
        ERL_NIF_TERM head, tail = term;
        for (unsigned i = 0; enif_get_list_cell(env_, tail, &head, &tail); ++i) {
            PyObject* item = convert(head, depth + 1);
            if (item == nullptr) {
                Py_DECREF(list);
                return nullptr;
            }
            PyList_SET_ITEM(list, i, item);
        }
        return list;
    }

    PyObject* tuple(ERL_NIF_TERM term, int depth) {
        int arity = 0;
        const ERL_NIF_TERM* items = nullptr;
        enif_get_tuple(env_, term, &arity, &items);
        ErlNifBinary bin;
        if (arity == 2 && items[0] == atoms::bytes && enif_inspect_binary(env_, items[1], &bin))
            return check(PyBytes_FromStringAndSize(reinterpret_cast<const char*>(bin.data), static_cast<Py_ssize_t>(bin.size)));
        if (arity == 2 && items[0] == atoms::buffer && enif_is_binary(env_, items[1]))
            return check(make_buffer_object(scope_.interp->types().buffer, items[1]));
        PyObject* tuple = check(PyTuple_New(arity));
        if (tuple == nullptr) return nullptr;
        for (int i = 0; i < arity; ++i) {
            PyObject* item = convert(items[i], depth + 1);
            if (item == nullptr) {
                Py_DECREF(tuple);
                return nullptr;
            }
            PyTuple_SET_ITEM(tuple, i, item);
        }
        return tuple;
    }

    PyObject* map(ERL_NIF_TERM term, int depth) {
        PyRef dict = PyRef::steal(check(PyDict_New()));
        if (!dict) return nullptr;
        ErlNifMapIterator it;
        if (!enif_map_iterator_create(env_, term, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return unsupported(term);
        ERL_NIF_TERM k, v;
        bool ok = true;
        while (ok && enif_map_iterator_get_pair(env_, &it, &k, &v)) {
            PyRef key = PyRef::steal(convert(k, depth + 1));
            PyRef value = key ? PyRef::steal(convert(v, depth + 1)) : PyRef();
            Py_ssize_t before = PyDict_GET_SIZE(dict.get());
            ok = value && (PyDict_SetItem(dict.get(), key.get(), value.get()) == 0 || check(nullptr));
            // Two keys equal in Python (a and <<"a">>, 1 and 1.0): say so
            // rather than drop one silently.
            if (ok && PyDict_GET_SIZE(dict.get()) == before) {
                fail(enif_make_tuple2(env_, atoms::duplicate_key, k));
                ok = false;
            }
            enif_map_iterator_next(env_, &it);
        }
        enif_map_iterator_destroy(env_, &it);
        return ok ? dict.release() : nullptr;
    }

    PyObject* reference(ERL_NIF_TERM term) {
        if (auto handle = get_handle(env_, term)) {
            if (handle->interpreter() != scope_.interp) return fail(atoms::env_wrong_interpreter);
            return Py_NewRef(handle->object());
        }
        // An isolated context's handle names an object in another process.
        if (is_release_token(env_, term)) return fail(atoms::env_wrong_interpreter);
        if (get_env(env_, term) || get_context(env_, term)) return unsupported(term);
        return check(make_term_object(scope_.interp->types().ref, term));
    }

    ErlNifEnv* env_;
    const ConvertScope& scope_;
    ERL_NIF_TERM* reason_;
    bool failed_ = false;
};

}  // namespace

PyRef term_to_py(ErlNifEnv* env, ERL_NIF_TERM term, const ConvertScope& scope, ERL_NIF_TERM* reason) {
    return PyRef::steal(TermConverter(env, scope, reason).convert(term, 0));
}

PyRef name_to_py(ErlNifEnv* env, ERL_NIF_TERM term, const ConvertScope& scope, ERL_NIF_TERM* reason) {
    if (!enif_is_atom(env, term) && !enif_is_binary(env, term)) {
        *reason = enif_make_tuple2(env, atoms::badarg, atoms::name);
        return PyRef();
    }
    PyRef str = term_to_py(env, term, scope, reason);
    if (str && !PyUnicode_Check(str.get())) {  // a binary that is not UTF-8, or true/none...
        *reason = enif_make_tuple2(env, atoms::badarg, atoms::name);
        return PyRef();
    }
    return str;
}

}  // namespace ep
