#include "erlang_module/python_logging.h"

#include <erl_nif.h>

#include <cstdio>
#include <string>

#include "erl/atoms.h"
#include "context/current_call.h"
#include "runtime/embedded_source.h"
#include "erl/erl_terms.h"
#include "erlang_module/erlang_functions.h"
#include "erlang_module/erlang_module.h"
#include "erl/msg_env.h"
#include "runtime/py_ref.h"
#include "context/request.h"

namespace ep {
namespace {

// Importing logging costs ~12 ms per interpreter, so the handler is added
// when the code run in that interpreter imports it: a meta-path finder
// hands out logging's own spec with a loader that connects the module once
// it has run (also on importlib.reload). Nothing is mutated but that fresh
// spec. The handler class is erlang.LogHandler. logging.basicConfig is
// wrapped so that it still configures the root logger when ours is its only
// handler (it would otherwise do nothing at all), keeping ours unless
// force=True.
constexpr const char* kHandlerSource = R"PY(
import sys, erlang

def _connect(logging):
    handler_class = getattr(erlang, 'LogHandler', None)
    if not (isinstance(handler_class, type) and issubclass(handler_class, logging.Handler)):
        class LogHandler(logging.Handler):
            """Hands log records to Erlang's logger (through the py_logger process)."""

            _erlang_python = True

            def emit(self, record):
                try:
                    erlang._log(record.levelno, record.name, self.format(record),
                                record.pathname, record.lineno, record.funcName or '')
                except Exception:
                    self.handleError(record)

        handler_class = erlang.LogHandler = LogHandler
    if not getattr(logging.basicConfig, '_erlang_python', False):
        basic_config = logging.basicConfig

        def basicConfig(**kwargs):
            root = logging.root
            ours = [h for h in root.handlers if getattr(h, '_erlang_python', False)]
            if not ours or len(ours) != len(root.handlers):
                return basic_config(**kwargs)
            for h in ours:
                root.removeHandler(h)
            try:
                basic_config(**kwargs)
            finally:
                if not kwargs.get('force'):
                    for h in ours:
                        root.addHandler(h)

        basicConfig.__doc__ = basic_config.__doc__
        basicConfig._erlang_python = True
        logging.basicConfig = basicConfig
    root = logging.getLogger()
    if not any(getattr(h, '_erlang_python', False) for h in root.handlers):
        root.addHandler(handler_class())

class _ConnectingLoader:
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _connect(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)

class _ConnectLoggingOnImport:
    def find_spec(self, name, path=None, target=None):
        if name != 'logging':
            return None
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find = getattr(finder, 'find_spec', None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        spec.loader = _ConnectingLoader(spec.loader)
        return spec

if 'logging' in sys.modules:
    _connect(sys.modules['logging'])
sys.meta_path.insert(0, _ConnectLoggingOnImport())
)PY";

// Longer messages are cut: a record is copied several times on its way to
// a handler, and a flood of large ones would hold gigabytes.
constexpr std::size_t kMaxMessageBytes = std::size_t{64} * 1024;

// UTF-8 text of a str; lone surrogates (undecodable file names, OS data)
// are escaped rather than losing the whole text.
ERL_NIF_TERM str_term(ErlNifEnv* env, PyObject* obj, std::size_t limit = kMaxMessageBytes) {
    if (!PyUnicode_Check(obj)) return make_binary(env, "");
    PyRef escaped;
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_AsUTF8AndSize(obj, &size);
    if (utf8 == nullptr) {
        PyErr_Clear();
        escaped = PyRef::steal(PyUnicode_AsEncodedString(obj, "utf-8", "backslashreplace"));
        if (!escaped) {
            PyErr_Clear();
            return make_binary(env, "");
        }
        utf8 = PyBytes_AS_STRING(escaped.get());
        size = PyBytes_GET_SIZE(escaped.get());
    }
    std::string_view text(utf8, static_cast<std::size_t>(size));
    if (text.size() <= limit) return make_binary(env, text);
    std::size_t cut = limit;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
    char tail[64];
    int n = std::snprintf(tail, sizeof tail, "... [%zu bytes cut]", text.size() - cut);
    std::string out(text.substr(0, cut));
    out.append(tail, static_cast<std::size_t>(n > 0 ? n : 0));
    return make_binary(env, out);
}

// {py_log, Level, Name, Message, Meta} to py_logger; the one shape of a record.
void send_record(MsgEnv& msg, long level, ERL_NIF_TERM name, ERL_NIF_TERM message, ERL_NIF_TERM caller,
                 ERL_NIF_TERM file, long line, ERL_NIF_TERM function, ErlNifEnv* caller_env) {
    ErlNifPid logger;
    if (!enif_whereis_pid(caller_env, atoms::py_logger, &logger)) {
        enif_clear_env(msg.get());
        return;
    }
    ErlNifEnv* env = msg.get();
    ERL_NIF_TERM keys[] = {enif_make_atom(env, "file"), enif_make_atom(env, "line"), atoms::function,
                           enif_make_atom(env, "caller")};
    ERL_NIF_TERM values[] = {file, enif_make_long(env, line), function, caller};
    ERL_NIF_TERM meta;
    enif_make_map_from_arrays(env, keys, values, 4, &meta);
    msg.send(logger, enif_make_tuple5(env, atoms::py_log, enif_make_long(env, level), name, message, meta), caller_env);
}

}  // namespace

void send_log_record(MsgEnv& msg, long level, ERL_NIF_TERM name, ERL_NIF_TERM message, ERL_NIF_TERM caller,
                     ErlNifEnv* caller_env) {
    send_record(msg, level, name, message, caller, atoms::undefined, 0, atoms::undefined, caller_env);
}

PyObject* erlang_log(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyLong_Check(args[0]) || !PyLong_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "_log(levelno, name, message, pathname, lineno, funcname)");
        return nullptr;
    }
    long level = PyLong_AsLong(args[0]);
    long line = PyLong_AsLong(args[4]);
    if (PyErr_Occurred()) return nullptr;
    try {
        MsgEnv msg;
        if (!msg) return PyErr_NoMemory();
        ErlNifEnv* env = msg.get();
        ERL_NIF_TERM caller = atoms::undefined;
        if (const Request* req = current_call().request) {
            caller = make_pid(env, req->caller);
        } else if (const ErlangModuleState* st = erlang_module_state(module)) {
            PyRef pid = PyRef::steal(calling_process(st));  // an event-loop task's
            if (pid) caller = term_object_value(pid.get(), env);
            else PyErr_Clear();
        }
        // Python never runs on a scheduler thread, hence no caller env.
        send_record(msg, level, str_term(env, args[1]), str_term(env, args[2]), caller, str_term(env, args[3]), line,
                    str_term(env, args[5]), nullptr);
    } catch (...) {
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

bool install_log_handler() {
    return static_cast<bool>(run_embedded_source(kHandlerSource));
}

}  // namespace ep
