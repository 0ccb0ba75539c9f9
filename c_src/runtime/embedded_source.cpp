#include "runtime/embedded_source.h"

namespace ep {

PyRef run_embedded_source(const char* source) {
    PyRef globals = PyRef::steal(PyDict_New());
    if (!globals || PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins()) < 0) return PyRef();
    PyRef ran = PyRef::steal(PyRun_String(source, Py_file_input, globals.get(), globals.get()));
    if (!ran) return PyRef();
    return globals;
}

}  // namespace ep
