// The functions of the Python `erlang` module (see erlang_functions.cpp).
#pragma once

#include <Python.h>

namespace ep {

extern PyMethodDef erlang_module_functions[];

}  // namespace ep
