#include "python_logging.h"

#include <erl_nif.h>

#include "atoms.h"
#include "erl_terms.h"
#include "erlang_functions.h"
#include "erlang_module.h"
#include "msg_env.h"
#include "py_ref.h"

namespace ep {
namespace {

// Importing logging costs ~12 ms per interpreter, so the handler is added
// when the code run in that interpreter first imports it: a one-shot
// meta-path hook wraps the logging module's loader. The handler class is
// also erlang.LogHandler, so users can add it back after replacing the root
// logger's handlers (logging.basicConfig(force=True)).
constexpr const char* kHandlerSource = R"PY(
import sys, erlang

def _connect(logging):
    class LogHandler(logging.Handler):
        """Hands log records to Erlang's logger (through the py_logger process)."""

        _erlang_python = True

        def emit(self, record):
            try:
                erlang._log(record.levelno, record.name, self.format(record),
                            record.pathname, record.lineno, record.funcName or '')
            except Exception:
                self.handleError(record)

    erlang.LogHandler = LogHandler
    root = logging.getLogger()
    if not any(getattr(h, '_erlang_python', False) for h in root.handlers):
        root.addHandler(LogHandler())

class _ConnectLoggingOnImport:
    def find_spec(self, name, path=None, target=None):
        if name != 'logging':
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        for finder in sys.meta_path:
            find = getattr(finder, 'find_spec', None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, 'exec_module', None)
        if exec_module is None:
            return spec
        # The loader may serve other modules too (a zip importer): the
        # wrapper puts the method back before anything else runs.
        had_own = 'exec_module' in getattr(loader, '__dict__', {})
        def exec_and_connect(module):
            if had_own:
                loader.exec_module = exec_module
            else:
                try:
                    del loader.exec_module
                except AttributeError:
                    pass
            exec_module(module)
            if module.__name__ == 'logging':
                _connect(module)
        try:
            loader.exec_module = exec_and_connect
        except AttributeError:
            pass
        return spec

if 'logging' in sys.modules:
    _connect(sys.modules['logging'])
else:
    sys.meta_path.insert(0, _ConnectLoggingOnImport())
)PY";

ERL_NIF_TERM str_term(ErlNifEnv* env, PyObject* obj) {
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_Check(obj) ? PyUnicode_AsUTF8AndSize(obj, &size) : nullptr;
    if (utf8 == nullptr) {
        PyErr_Clear();
        return make_binary(env, "");
    }
    return make_binary(env, std::string_view(utf8, static_cast<size_t>(size)));
}

}  // namespace

PyObject* erlang_log(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyLong_Check(args[0]) || !PyLong_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "_log(levelno, name, message, pathname, lineno, funcname)");
        return nullptr;
    }
    long level = PyLong_AsLong(args[0]);
    long line = PyLong_AsLong(args[4]);
    if (PyErr_Occurred()) return nullptr;
    try {
        ErlNifPid logger;
        // Python never runs on a scheduler thread, hence no caller env.
        if (!enif_whereis_pid(nullptr, atoms::py_logger, &logger)) Py_RETURN_NONE;
        MsgEnv msg;
        if (!msg) return PyErr_NoMemory();
        ErlNifEnv* env = msg.get();
        ERL_NIF_TERM caller = atoms::undefined;
        if (const ErlangModuleState* st = erlang_module_state(module)) {
            PyRef pid = PyRef::steal(calling_process(st));
            if (pid) caller = term_object_value(pid.get(), env);
            else PyErr_Clear();
        }
        ERL_NIF_TERM keys[] = {enif_make_atom(env, "file"), enif_make_atom(env, "line"), atoms::function,
                               enif_make_atom(env, "caller")};
        ERL_NIF_TERM values[] = {str_term(env, args[3]), enif_make_long(env, line), str_term(env, args[5]), caller};
        ERL_NIF_TERM meta;
        enif_make_map_from_arrays(env, keys, values, 4, &meta);
        ERL_NIF_TERM record = enif_make_tuple5(env, atoms::py_log, enif_make_long(env, level),
                                               str_term(env, args[1]), str_term(env, args[2]), meta);
        msg.send(logger, record);
    } catch (...) {
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

bool install_log_handler() {
    PyRef globals = PyRef::steal(PyDict_New());
    if (!globals || PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins()) < 0) return false;
    PyRef ran = PyRef::steal(PyRun_String(kHandlerSource, Py_file_input, globals.get(), globals.get()));
    return static_cast<bool>(ran);
}

}  // namespace ep
