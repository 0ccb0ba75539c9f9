// Python ints of any size <-> little-endian magnitude bytes, across the
// CPython versions we build against.
#pragma once

#include <Python.h>

#include <cstdint>
#include <vector>

namespace ep {

// New int from an unsigned little-endian magnitude.
inline PyObject* pylong_from_magnitude(const std::vector<std::uint8_t>& le, bool negative) {
#if PY_VERSION_HEX >= 0x030D0000
    PyObject* value = PyLong_FromUnsignedNativeBytes(le.data(), le.size(), Py_ASNATIVEBYTES_LITTLE_ENDIAN);
#else
    PyObject* value = _PyLong_FromByteArray(le.data(), le.size(), 1, 0);
#endif
    if (value == nullptr || !negative) return value;
    PyObject* neg = PyNumber_Negative(value);
    Py_DECREF(value);
    return neg;
}

// Little-endian magnitude of an int (subclasses included: their __abs__ or
// __index__ are never called). False with an exception set on failure.
inline bool pylong_magnitude(PyObject* value, std::vector<std::uint8_t>* le, bool* negative) {
    *negative = _PyLong_Sign(value) < 0;
    // int's own absolute value, whatever the subclass overrides.
    PyObject* abs = PyLong_Type.tp_as_number->nb_absolute(value);
    if (abs == nullptr) return false;
    size_t bits = _PyLong_NumBits(abs);
    if (bits == static_cast<size_t>(-1) && PyErr_Occurred()) {
        Py_DECREF(abs);
        return false;
    }
    le->assign((bits + 7) / 8, 0);
#if PY_VERSION_HEX >= 0x030D0000
    int rc = PyLong_AsNativeBytes(abs, le->data(), static_cast<Py_ssize_t>(le->size()),
                                  Py_ASNATIVEBYTES_LITTLE_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER) < 0
                 ? -1
                 : 0;
#else
    int rc = _PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(abs), le->data(), le->size(), 1, 0);
#endif
    Py_DECREF(abs);
    return rc == 0;
}

}  // namespace ep
