// Python source kept in the NIF (import hooks, clean-up code), run in the
// interpreter the calling thread is attached to.
#pragma once

#include <Python.h>

#include "runtime/py_ref.h"

namespace ep {

// GIL held. Runs `source` as a module body in a fresh namespace that sees
// the builtins, and returns that namespace (its functions and classes stay
// reachable through it); empty, with a Python exception set, on failure.
PyRef run_embedded_source(const char* source);

}  // namespace ep
