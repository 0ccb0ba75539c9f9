// What term <-> object conversion needs to know about where it runs.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include <memory>
#include <unordered_map>

#include "runtime/interpreter.h"
#include "runtime/py_ref.h"

namespace ep {

class Context;

// Terms nested deeper than this are refused with {error, nesting_too_deep}
// instead of exhausting the stack (spec §5).
constexpr int kMaxNesting = 1000;

// Interned Python strings for atoms seen before (module and function names
// repeat on every call). Atom terms are global constants, so the term itself
// is the key. Owned by one context thread; touched under its GIL.
class AtomNames {
public:
    // New reference to the str for `atom`, or nullptr with an exception set.
    PyObject* get(ErlNifEnv* env, ERL_NIF_TERM atom);
    void clear() { names_.clear(); }

private:
    static constexpr std::size_t kLimit = 4096;
    std::unordered_map<ERL_NIF_TERM, PyRef> names_;
};

struct ConvertScope {
    const std::shared_ptr<Interpreter>& interp;  // where objects live
    std::weak_ptr<Context> context;              // handles made here run on it
    AtomNames* atom_names;                       // may be nullptr
};

// The str of an atom's name (atoms of any Unicode name included). New
// reference, or nullptr with an exception set.
PyObject* atom_to_str(ErlNifEnv* env, ERL_NIF_TERM atom);

}  // namespace ep
