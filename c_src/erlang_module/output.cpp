#include "erlang_module/output.h"

#include <cstddef>
#include <cstring>

#include "context/context.h"
#include "context/current_call.h"
#include "context/request.h"
#include "erl/msg_env.h"
#include "runtime/py_ref.h"

namespace ep {
namespace {

constexpr std::size_t kMaxOutputPerCall = std::size_t{16} << 20;  // 16 MiB

bool send_output(const Request& req, bool is_stderr, const char* data, std::size_t size) {
    MsgEnv msg;
    if (!msg) return false;
    ErlNifEnv* env = msg.get();
    ERL_NIF_TERM bin;
    unsigned char* out = enif_make_new_binary(env, size, &bin);
    if (out == nullptr) return false;
    if (size > 0) std::memcpy(out, data, size);
    ERL_NIF_TERM message = enif_make_tuple4(env, msg.copy(req.tag), enif_make_atom(env, "py_output"),
                                            enif_make_atom(env, is_stderr ? "stderr" : "stdout"), bin);
    return msg.send(req.caller, message);
}

}  // namespace

PyObject* erlang_write(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_write(is_stderr, text)");
        return nullptr;
    }
    const Request* req = current_call().request;
    if (req == nullptr || req->reply_to != ReplyTo::Waiter) Py_RETURN_FALSE;
    // A call its caller gave up on (timed out) answers nothing, output
    // included: its caller is no longer waiting for it.
    Context* ctx = current_call().context;
    if (ctx != nullptr && ctx->running_cancelled()) Py_RETURN_TRUE;
    int is_stderr = PyObject_IsTrue(args[0]);
    if (is_stderr < 0) return nullptr;
    // Lone surrogates (from surrogateescape) have no UTF-8: escape them.
    PyRef bytes = PyRef::steal(PyUnicode_AsEncodedString(args[1], "utf-8", "backslashreplace"));
    if (!bytes) return nullptr;
    auto size = static_cast<std::size_t>(PyBytes_GET_SIZE(bytes.get()));
    CurrentCall& call = current_call();  // its output counters are this request's
    if (call.output_bytes + size > kMaxOutputPerCall) {
        if (!call.output_cut) {
            call.output_cut = true;
            static const char kNote[] = "\n[erlang_python: output of this call past 16 MiB dropped]\n";
            send_output(*req, true, kNote, sizeof kNote - 1);
        }
        Py_RETURN_TRUE;
    }
    call.output_bytes += size;
    try {
        if (!send_output(*req, is_stderr != 0, PyBytes_AS_STRING(bytes.get()), size)) Py_RETURN_FALSE;
    } catch (...) {
        return PyErr_NoMemory();
    }
    Py_RETURN_TRUE;
}

}  // namespace ep
