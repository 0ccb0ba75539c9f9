// py:buffer/1 (spec §10): the bytes of an object that exports a buffer
// (numpy arrays, array.array, memoryview...) with their layout, in one copy
// at most, never element by element.
#pragma once

#include <Python.h>
#include <erl_nif.h>

namespace ep {

// GIL held. True with *out = #{data, format, itemsize, shape}; false with
// *out = not_a_buffer (also for items that are Python objects) | not_contiguous | {result_too_large, Max} | a Python
// error {Type, Message}.
bool buffer_to_term(PyObject* obj, ErlNifEnv* env, ERL_NIF_TERM* out);

}  // namespace ep
