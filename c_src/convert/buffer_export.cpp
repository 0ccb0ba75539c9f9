#include "convert/buffer_export.h"

#include <cstring>
#include <vector>

#include "convert/py_to_term.h"
#include "erl/atoms.h"
#include "erl/erl_terms.h"
#include "runtime/py_errors.h"

namespace ep {
namespace {

// One exported view, released on every path.
class BufferView {
public:
    BufferView() = default;
    BufferView(const BufferView&) = delete;
    BufferView& operator=(const BufferView&) = delete;
    ~BufferView() {
        if (held_) PyBuffer_Release(&view_);
    }
    bool acquire(PyObject* obj, int flags) { return held_ = PyObject_GetBuffer(obj, &view_, flags) == 0; }
    const Py_buffer& operator*() const { return view_; }

private:
    Py_buffer view_{};
    bool held_ = false;
};

ERL_NIF_TERM shape_term(const Py_buffer& view, ErlNifEnv* env) {
    if (view.ndim == 0) return enif_make_list(env, 0);  // a scalar (numpy's 0-d arrays)
    if (view.shape == nullptr)  // one dimension, as bytes
        return enif_make_list1(env, enif_make_int64(env, view.len / (view.itemsize ? view.itemsize : 1)));
    std::vector<ERL_NIF_TERM> dims(static_cast<std::size_t>(view.ndim));
    for (int i = 0; i < view.ndim; ++i) dims[static_cast<std::size_t>(i)] = enif_make_int64(env, view.shape[i]);
    return enif_make_list_from_array(env, dims.data(), static_cast<unsigned>(dims.size()));
}

}  // namespace

bool buffer_to_term(PyObject* obj, ErlNifEnv* env, ERL_NIF_TERM* out) {
    if (!PyObject_CheckBuffer(obj)) {
        *out = atoms::not_a_buffer;
        return false;
    }
    BufferView view;
    if (!view.acquire(obj, PyBUF_RECORDS_RO)) {
        *out = take_python_error(env, nullptr).reason;
        return false;
    }
    if (!PyBuffer_IsContiguous(&*view, 'C')) {
        *out = atoms::not_contiguous;
        return false;
    }
    // A binary the VM cannot allocate ends the VM: the same bound as results.
    if (static_cast<std::size_t>((*view).len) > kMaxResultWords * 8) {
        *out = enif_make_tuple2(env, atoms::result_too_large, enif_make_uint64(env, kMaxResultWords * 8));
        return false;
    }
    const char* format = (*view).format ? (*view).format : "B";
    // Items that are pointers to Python objects (numpy's object arrays) are
    // no data for Erlang.
    if (std::strchr(format, 'O') != nullptr) {
        *out = atoms::not_a_buffer;
        return false;
    }
    auto size = static_cast<std::size_t>((*view).len);
    ERL_NIF_TERM data;
    unsigned char* dst = enif_make_new_binary(env, size, &data);  // the one copy: the object may change later
    if (size != 0) std::memcpy(dst, (*view).buf, size);
    ERL_NIF_TERM keys[] = {atoms::data, atoms::format, atoms::itemsize, atoms::shape};
    ERL_NIF_TERM values[] = {data, make_binary(env, format),
                             enif_make_int64(env, (*view).itemsize), shape_term(*view, env)};
    return enif_make_map_from_arrays(env, keys, values, 4, out) != 0;
}

}  // namespace ep
