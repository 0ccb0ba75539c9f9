#include "erlang_module/buffer_object.h"

#include <cstring>

namespace ep {
namespace {

// The binary lives in an environment of the object's own: the VM frees the
// environment (and lets go of the binary) from any thread, so dropping the
// object needs nothing but its own interpreter's GIL, which dealloc has.
struct BufferObject {
    PyObject_HEAD
    ErlNifEnv* env;
    ERL_NIF_TERM bin;
    const char* data;
    Py_ssize_t size;
    Py_hash_t hash;  // -1 until asked
};

BufferObject* as_buffer(PyObject* self) { return reinterpret_cast<BufferObject*>(self); }

void buffer_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    if (as_buffer(self)->env) enif_free_env(as_buffer(self)->env);
    type->tp_free(self);
    Py_DECREF(type);
}

// A view holds a reference to the object, so the bytes outlive every view.
int buffer_getbuffer(PyObject* self, Py_buffer* view, int flags) {
    BufferObject* b = as_buffer(self);
    return PyBuffer_FillInfo(view, self, const_cast<char*>(b->data), b->size, /*readonly=*/1, flags);
}

Py_ssize_t buffer_length(PyObject* self) { return as_buffer(self)->size; }

// Over the same binary: zero-copy. `len` bytes from `start`.
PyObject* sub_buffer(PyObject* self, Py_ssize_t start, Py_ssize_t len) {
    BufferObject* b = as_buffer(self);
    ErlNifEnv* scratch = enif_alloc_env();
    if (scratch == nullptr) return PyErr_NoMemory();
    ERL_NIF_TERM sub = enif_make_sub_binary(scratch, enif_make_copy(scratch, b->bin), static_cast<size_t>(start),
                                            static_cast<size_t>(len));
    PyObject* out = make_buffer_object(Py_TYPE(self), sub);
    enif_free_env(scratch);
    return out;
}

PyObject* buffer_subscript(PyObject* self, PyObject* key) {
    BufferObject* b = as_buffer(self);
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) return nullptr;
        if (i < 0) i += b->size;
        if (i < 0 || i >= b->size) {
            PyErr_SetString(PyExc_IndexError, "erlang.Buffer index out of range");
            return nullptr;
        }
        return PyLong_FromLong(static_cast<unsigned char>(b->data[i]));
    }
    if (PySlice_Check(key)) {
        Py_ssize_t start = 0, stop = 0, step = 0;
        if (PySlice_Unpack(key, &start, &stop, &step) < 0) return nullptr;
        Py_ssize_t len = PySlice_AdjustIndices(b->size, &start, &stop, step);
        if (step == 1) return sub_buffer(self, start, len);
        // Strided: no binary has that shape, so this one is a copy.
        PyObject* out = PyBytes_FromStringAndSize(nullptr, len);
        if (out == nullptr) return nullptr;
        char* dst = PyBytes_AS_STRING(out);
        for (Py_ssize_t i = 0, at = start; i < len; ++i, at += step) dst[i] = b->data[at];
        return out;
    }
    PyErr_Format(PyExc_TypeError, "erlang.Buffer indices must be integers or slices, not %.200s", Py_TYPE(key)->tp_name);
    return nullptr;
}

// Equal to any object with the same bytes (bytes, bytearray, another
// Buffer); hashed like bytes, so a Buffer and its bytes are one dict key.
PyObject* buffer_richcompare(PyObject* self, PyObject* other, int op) {
    if ((op != Py_EQ && op != Py_NE) || !PyObject_CheckBuffer(other)) Py_RETURN_NOTIMPLEMENTED;
    Py_buffer view;
    if (PyObject_GetBuffer(other, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        Py_RETURN_NOTIMPLEMENTED;
    }
    BufferObject* b = as_buffer(self);
    bool equal = view.len == b->size && std::memcmp(view.buf, b->data, static_cast<size_t>(b->size)) == 0;
    PyBuffer_Release(&view);
    return PyBool_FromLong((op == Py_EQ) == equal);
}

// Through a memoryview over the raw bytes, which hashes them as bytes would
// (CPython has no public bytes-hash function before 3.14). Not a view of
// `self`: a memoryview hashes its exporter first, which would recurse.
Py_hash_t buffer_hash(PyObject* self) {
    BufferObject* b = as_buffer(self);
    if (b->hash != -1) return b->hash;
    PyObject* view = PyMemoryView_FromMemory(const_cast<char*>(b->data), b->size, PyBUF_READ);
    if (view == nullptr) return -1;
    b->hash = PyObject_Hash(view);
    Py_DECREF(view);
    return b->hash;
}

// Its bytes as ints, like bytes: through a memoryview, which holds the Buffer.
PyObject* buffer_iter(PyObject* self) {
    PyObject* view = PyMemoryView_FromObject(self);
    if (view == nullptr) return nullptr;
    PyObject* it = PyObject_GetIter(view);
    Py_DECREF(view);
    return it;
}

PyObject* buffer_repr(PyObject* self) { return PyUnicode_FromFormat("<erlang.Buffer of %zd bytes>", as_buffer(self)->size); }

PyType_Slot buffer_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(buffer_dealloc)},
    {Py_tp_repr, reinterpret_cast<void*>(buffer_repr)},
    {Py_tp_hash, reinterpret_cast<void*>(buffer_hash)},
    {Py_tp_richcompare, reinterpret_cast<void*>(buffer_richcompare)},
    {Py_tp_iter, reinterpret_cast<void*>(buffer_iter)},
    {Py_bf_getbuffer, reinterpret_cast<void*>(buffer_getbuffer)},
    {Py_sq_length, reinterpret_cast<void*>(buffer_length)},
    {Py_mp_length, reinterpret_cast<void*>(buffer_length)},
    {Py_mp_subscript, reinterpret_cast<void*>(buffer_subscript)},
    {Py_tp_doc, const_cast<char*>("The bytes of an Erlang binary passed as {buffer, Bin}: read-only, no copy. "
                                  "Supports the buffer protocol (memoryview, numpy.frombuffer), len, iteration, "
                                  "indexing and slicing (a slice is a Buffer over the same bytes).")},
    {0, nullptr},
};

}  // namespace

PyType_Spec buffer_spec = {"erlang.Buffer", sizeof(BufferObject), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                           buffer_slots};

PyObject* make_buffer_object(PyTypeObject* type, ERL_NIF_TERM bin) {
    ErlNifEnv* own = enif_alloc_env();
    if (own == nullptr) return PyErr_NoMemory();
    ERL_NIF_TERM copy = enif_make_copy(own, bin);  // a reference count on a large binary, not its bytes
    ErlNifBinary bytes;
    if (!enif_inspect_binary(own, copy, &bytes)) {
        enif_free_env(own);
        PyErr_SetString(PyExc_TypeError, "erlang.Buffer: not a binary");
        return nullptr;
    }
    PyObject* self = type->tp_alloc(type, 0);
    if (self == nullptr) {
        enif_free_env(own);
        return nullptr;
    }
    BufferObject* b = as_buffer(self);
    b->env = own;
    b->bin = copy;
    b->data = reinterpret_cast<const char*>(bytes.data);
    b->size = static_cast<Py_ssize_t>(bytes.size);
    b->hash = -1;
    return self;
}

ERL_NIF_TERM buffer_object_value(PyObject* obj, ErlNifEnv* env) { return enif_make_copy(env, as_buffer(obj)->bin); }

}  // namespace ep
