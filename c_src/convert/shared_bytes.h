// Large bytes (and str) leave Python without a copy (spec §10): the binary the
// VM sees is the immutable object's own storage, held by a resource that
// releases the object on its interpreter's thread when the VM lets go of the
// binary.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include <cstddef>
#include <memory>

namespace ep {

class Interpreter;

// Below this, copying is cheaper than a resource and a deferred release.
constexpr std::size_t kShareBytesFrom = 64 * 1024;

// At load, on a scheduler.
bool open_shared_bytes_type(ErlNifEnv* load_env);

// GIL of `interp` held. A binary in `env` over `size` bytes at `data`, which
// `owner` (an immutable object of that interpreter: bytes, or the UTF-8 of a
// str) keeps valid; the object is held, not copied.
ERL_NIF_TERM share_bytes(ErlNifEnv* env, PyObject* owner, const char* data, std::size_t size,
                         const std::shared_ptr<Interpreter>& interp);

// Binaries made by share_bytes that the VM still holds.
std::size_t shared_bytes_alive();

}  // namespace ep
