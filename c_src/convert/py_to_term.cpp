#include "convert/py_to_term.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "convert/bigint_ext.h"
#include "erl/erl_terms.h"
#include "erlang_module/erlang_module.h"
#include "convert/atom_budget.h"
#include "context/handle.h"
#include "runtime/py_errors.h"
#include "convert/pylong_bytes.h"
#include "convert/shared_bytes.h"
#include "erlang_module/buffer_object.h"
#include "nif/resources.h"

namespace ep {
namespace {

class ObjectConverter {
public:
    ObjectConverter(ErlNifEnv* env, const ConvertScope& scope) : env_(env), scope_(scope), types_(scope.interp->types()) {}

    // Converts obj; on failure returns false and reason() says why.
    bool convert(PyObject* obj, int depth, ERL_NIF_TERM* out) {
        if (depth > kMaxNesting) return fail(atoms::nesting_too_deep);
        // Python objects may be shared (x = [[0] * 1000] * 1000); the term
        // is a tree, so it is bounded by what it will take, not by Python's size.
        if ((words_ += 3) > kMaxResultWords) return too_large();
        if (obj == Py_None) return set(out, atoms::none);
        if (obj == Py_True) return set(out, atoms::true_);
        if (obj == Py_False) return set(out, atoms::false_);
        if (PyLong_Check(obj)) return integer(obj, out);
        if (PyFloat_Check(obj)) return real(PyFloat_AS_DOUBLE(obj), out);
        if (PyUnicode_Check(obj)) return text(obj, out);
        if (PyBytes_Check(obj))
            return immutable_binary(obj, PyBytes_AS_STRING(obj), static_cast<size_t>(PyBytes_GET_SIZE(obj)), out);
        if (PyByteArray_Check(obj))
            return binary(PyByteArray_AS_STRING(obj), static_cast<size_t>(PyByteArray_GET_SIZE(obj)), out);
        if (Py_IS_TYPE(obj, types_.buffer)) {
            // A sub-binary over a reference-counted binary, or a copied heap
            // binary of at most 64 bytes: about this many words either way.
            if ((words_ += 12) > kMaxResultWords) return too_large();
            return set(out, buffer_object_value(obj, env_));
        }
        if (PyList_Check(obj)) return sequence(obj, depth, /*tuple=*/false, out);
        if (PyTuple_Check(obj)) return sequence(obj, depth, /*tuple=*/true, out);
        if (PyDict_Check(obj)) return dict(obj, depth, out);
        if (Py_IS_TYPE(obj, types_.pid) || Py_IS_TYPE(obj, types_.ref)) return set(out, term_object_value(obj, env_));
        return handle(obj, out);
    }

    ERL_NIF_TERM reason() const { return reason_; }
    bool deferred_maps() const { return deferred_maps_; }

private:
    static bool set(ERL_NIF_TERM* out, ERL_NIF_TERM value) {
        *out = value;
        return true;
    }
    bool fail(ERL_NIF_TERM reason) {
        reason_ = reason;
        return false;
    }
    bool python_failure() { return fail(take_python_error(env_, nullptr).reason); }
    bool too_large() {
        return fail(enif_make_tuple2(env_, atoms::result_too_large, enif_make_uint64(env_, kMaxResultWords * 8)));
    }
    // Binaries are copied into the term: their bytes count against the budget.
    bool binary(const char* data, size_t size, ERL_NIF_TERM* out) {
        if ((words_ += size / 8) > kMaxResultWords) return too_large();
        return set(out, make_binary(env_, {data, size}));
    }

    // The bytes of an immutable object: large ones are shared, not copied.
    // They still count against the budget: the bound is on the result as
    // the receiver sees it (§5), whatever it costs to build.
    bool immutable_binary(PyObject* owner, const char* data, size_t size, ERL_NIF_TERM* out) {
        if (size < kShareBytesFrom) return binary(data, size, out);
        if ((words_ += size / 8) > kMaxResultWords) return too_large();
        return set(out, share_bytes(env_, owner, data, size, scope_.interp));
    }

    bool integer(PyObject* obj, ERL_NIF_TERM* out) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow == 0) {
            if (v == -1 && PyErr_Occurred()) return python_failure();
            return set(out, enif_make_int64(env_, v));
        }
        if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(obj);
            if (!PyErr_Occurred()) return set(out, enif_make_uint64(env_, u));
            PyErr_Clear();
        }
        BigInt big;
        if (!pylong_magnitude(obj, &big.magnitude, &big.negative)) return python_failure();
        std::vector<std::uint8_t> ext = encode_bigint_ext(big);
        if (enif_binary_to_term(env_, ext.data(), ext.size(), out, 0) == 0) return fail(atoms::no_memory);
        return true;
    }

    bool real(double d, ERL_NIF_TERM* out) {
        if (std::isnan(d)) return set(out, atoms::nan);
        if (std::isinf(d)) return set(out, d > 0 ? atoms::infinity : atoms::neg_infinity);
        return set(out, enif_make_double(env_, d));
    }

    bool text(PyObject* obj, ERL_NIF_TERM* out) {
        Py_ssize_t size = 0;
        const char* data = PyUnicode_AsUTF8AndSize(obj, &size);
        if (data == nullptr) {
            // Lone surrogates (from surrogateescape'd file names, say) have no
            // UTF-8 form; keep their bytes rather than failing the whole result.
            // An atom has no such fallback: its name is text.
            PyErr_Clear();
            if (Py_IS_TYPE(obj, types_.atom))
                return fail(enif_make_tuple2(env_, atoms::badarg,
                                             make_binary(env_, "erlang.Atom: the name is not valid Unicode")));
            PyRef bytes = PyRef::steal(PyUnicode_AsEncodedString(obj, "utf-8", "surrogatepass"));
            if (!bytes) return python_failure();
            return binary(PyBytes_AS_STRING(bytes.get()), static_cast<size_t>(PyBytes_GET_SIZE(bytes.get())), out);
        }
        if (Py_IS_TYPE(obj, types_.atom)) {
            if (make_atom_from_python(env_, {data, static_cast<size_t>(size)}, out)) return true;
            return fail(enif_make_tuple2(
                env_, atoms::badarg,
                make_binary(env_, "erlang.Atom: name over 255 characters, or too many new atoms made from Python")));
        }
        return immutable_binary(obj, data, static_cast<size_t>(size), out);
    }

    bool sequence(PyObject* obj, int depth, bool tuple, ERL_NIF_TERM* out) {
        return tuple ? tuple_items(obj, depth, out) : list_items(obj, depth, out);
    }

    // Built from the last item to the first, cell by cell: no array of the
    // items (for a long list, a fresh allocation on every call).
    bool list_items(PyObject* obj, int depth, ERL_NIF_TERM* out) {
        ERL_NIF_TERM tail = enif_make_list(env_, 0);
        for (Py_ssize_t i = PyList_GET_SIZE(obj); i-- > 0;) {
            // A list may change while we convert (an item's conversion can
            // run Python code, a __del__ say), so hold the item and re-check
            // the length each time.
            if (i >= PyList_GET_SIZE(obj)) continue;
            PyRef item = PyRef::borrow(PyList_GET_ITEM(obj, i));
            ERL_NIF_TERM term;
            if (!convert(item.get(), depth + 1, &term)) return false;
            tail = enif_make_list_cell(env_, term, tail);
        }
        return set(out, tail);
    }

    bool tuple_items(PyObject* obj, int depth, ERL_NIF_TERM* out) {
        Py_ssize_t n = PyTuple_GET_SIZE(obj);
        ERL_NIF_TERM small[8];
        std::vector<ERL_NIF_TERM> large;
        ERL_NIF_TERM* items = small;
        if (n > 8) {
            large.resize(static_cast<size_t>(n));
            items = large.data();
        }
        for (Py_ssize_t i = 0; i < n; ++i)
            if (!convert(PyTuple_GET_ITEM(obj, i), depth + 1, &items[i])) return false;
        return set(out, enif_make_tuple_from_array(env_, items, static_cast<unsigned>(n)));
    }

    bool dict(PyObject* obj, int depth, ERL_NIF_TERM* out) {
        std::vector<ERL_NIF_TERM> keys, values;
        auto n = static_cast<size_t>(PyDict_GET_SIZE(obj));
        keys.reserve(n);
        values.reserve(n);
        KeyClasses classes(types_);
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(obj, &pos, &k, &v)) {
            // Held while converting: a collection triggered meanwhile could
            // run a __del__ that edits this dict.
            PyRef key = PyRef::borrow(k), value = PyRef::borrow(v);
            ERL_NIF_TERM kt, vt;
            if (!convert(key.get(), depth + 1, &kt) || !convert(value.get(), depth + 1, &vt)) return false;
            classes.note(key.get());
            keys.push_back(kt);
            values.push_back(vt);
        }
        if (keys.size() > kDirectMapKeys) {
            // Two Python keys that became one term ('x' and b'x') must not
            // lose an entry in the receiver's maps:from_list.
            if (classes.may_collide()) {
                std::size_t dup = find_duplicate_key(keys);
                if (dup < keys.size()) return fail(enif_make_tuple2(env_, atoms::duplicate_key, keys[dup]));
            }
            std::vector<ERL_NIF_TERM> pairs(keys.size());
            for (size_t i = 0; i < keys.size(); ++i) pairs[i] = enif_make_tuple2(env_, keys[i], values[i]);
            deferred_maps_ = true;
            return set(out, enif_make_tuple2(env_, map_marker(env_),
                                             enif_make_list_from_array(env_, pairs.data(), static_cast<unsigned>(pairs.size()))));
        }
        ERL_NIF_TERM map;
        if (enif_make_map_from_arrays(env_, keys.data(), values.data(), keys.size(), &map)) return set(out, map);
        // Refused only for a key given twice: two Python keys became the same term.
        std::size_t dup = find_duplicate_key(keys);
        return fail(enif_make_tuple2(env_, atoms::duplicate_key, dup < keys.size() ? keys[dup] : atoms::undefined));
    }

    // Whether two distinct keys of one Python dict may become the same term.
    // Exact ints, finite floats, pids, refs and handles never do, nor exact
    // strs among themselves. A str and a bytes can ('x' and b'x'), two keys
    // that become atoms can (None and erlang.Atom('none'), two NaNs), two
    // tuples can (they may hold such), and so can instances of subclasses,
    // whose __eq__ and __hash__ need not be their base's.
    class KeyClasses {
    public:
        explicit KeyClasses(const ErlangTypes& types) : types_(types) {}
        void note(PyObject* key) {
            if (PyUnicode_CheckExact(key)) str_ = true;
            else if (PyLong_CheckExact(key)) return;
            else if (key == Py_None || PyBool_Check(key) || Py_IS_TYPE(key, types_.atom)) ++atoms_;
            else if (PyFloat_CheckExact(key)) atoms_ += std::isfinite(PyFloat_AS_DOUBLE(key)) ? 0 : 1;
            else if (PyBytes_CheckExact(key) || Py_IS_TYPE(key, types_.buffer)) bytes_ = true;
            else if (PyTuple_CheckExact(key)) ++tuples_;
            else if (PyLong_Check(key) || PyFloat_Check(key) || PyUnicode_Check(key) || PyBytes_Check(key) ||
                     PyTuple_Check(key))
                subclass_ = true;
        }
        bool may_collide() const { return (str_ && bytes_) || atoms_ >= 2 || tuples_ >= 2 || subclass_; }

    private:
        const ErlangTypes& types_;
        bool str_ = false, bytes_ = false, subclass_ = false;
        int atoms_ = 0, tuples_ = 0;
    };

    bool handle(PyObject* obj, ERL_NIF_TERM* out) {
        // Code run outside any context (the event loop) hands its handles
        // to one of the interpreter's contexts.
        std::weak_ptr<Context> owner = scope_.context.expired() ? scope_.interp->default_context() : scope_.context;
        auto h = std::make_shared<Handle>(Py_NewRef(obj), scope_.interp, std::move(owner));
        return set(out, make_handle_term(env_, std::move(h)));
    }

    ErlNifEnv* env_;
    const ConvertScope& scope_;
    const ErlangTypes& types_;
    ERL_NIF_TERM reason_ = 0;
    bool deferred_maps_ = false;
    std::size_t words_ = 0;
};

}  // namespace

std::size_t find_duplicate_key(const std::vector<ERL_NIF_TERM>& keys) {
    std::vector<std::pair<ErlNifUInt64, std::size_t>> hashed(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) hashed[i] = {enif_hash(ERL_NIF_INTERNAL_HASH, keys[i], 0), i};
    std::sort(hashed.begin(), hashed.end());
    for (std::size_t i = 0; i < hashed.size(); ++i)
        for (std::size_t j = i + 1; j < hashed.size() && hashed[j].first == hashed[i].first; ++j)
            if (enif_is_identical(keys[hashed[i].second], keys[hashed[j].second]))
                return std::max(hashed[i].second, hashed[j].second);
    return keys.size();
}

namespace {

ErlNifEnv* marker_env = nullptr;
ERL_NIF_TERM marker_term = 0;

// py:to_term/1 unwraps one level of containers that have no Erlang form.
// An empty ref means a Python error is set.
PyRef unwrap_top_level(PyObject* obj) {
    if (PyAnySet_Check(obj) || PyDictViewSet_Check(obj) || PyDictValues_Check(obj) || PyRange_Check(obj))
        return PyRef::steal(PySequence_List(obj));
    if (PyMemoryView_Check(obj)) return PyRef::steal(PyBytes_FromObject(obj));
    if (!PyDict_Check(obj) && PyMapping_Check(obj) && !PySequence_Check(obj)) {
        PyRef dict = PyRef::steal(PyDict_New());
        if (!dict) return dict;
        if (PyDict_Update(dict.get(), obj) == 0) return dict;
        // Not a mapping after all (no keys()): keep the object itself.
        if (!PyErr_ExceptionMatches(PyExc_AttributeError) && !PyErr_ExceptionMatches(PyExc_TypeError)) return PyRef();
        PyErr_Clear();
    }
    return PyRef::borrow(obj);
}

}  // namespace

bool py_to_term(PyObject* obj, ErlNifEnv* env, const ConvertScope& scope, ERL_NIF_TERM* out, bool* deferred_maps,
                Unwrap unwrap) {
    PyRef target = unwrap == Unwrap::TopLevel ? unwrap_top_level(obj) : PyRef::borrow(obj);
    ObjectConverter converter(env, scope);
    if (!target) {
        *out = take_python_error(env, nullptr).reason;
        return false;
    }
    if (converter.convert(target.get(), 0, out)) {
        *deferred_maps = converter.deferred_maps();
        return true;
    }
    *out = converter.reason();
    return false;
}

void init_map_marker(ErlNifEnv* load_env) {
    marker_env = enif_alloc_env();
    marker_term = enif_make_copy(marker_env, enif_make_ref(load_env));
}

ERL_NIF_TERM map_marker(ErlNifEnv* env) { return enif_make_copy(env, marker_term); }

}  // namespace ep
