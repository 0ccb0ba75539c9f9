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
constexpr std::size_t kMessageOverhead = 256;  // bytes, roughly, of one message beyond its text

// {Tag, py_output, stdout | stderr, Binary} for req's caller, built in msg.
ERL_NIF_TERM output_message(const MsgEnv& msg, const Request& req, bool is_stderr, const char* data,
                            std::size_t size) {
    ErlNifEnv* env = msg.get();
    ERL_NIF_TERM bin;
    unsigned char* out = enif_make_new_binary(env, size, &bin);
    if (out == nullptr) return 0;
    if (size > 0) std::memcpy(out, data, size);
    return enif_make_tuple4(env, msg.copy(req.tag), enif_make_atom(env, "py_output"),
                            enif_make_atom(env, is_stderr ? "stderr" : "stdout"), bin);
}

// Sends it unless the call has been cancelled; only the send itself runs
// under the queue's lock.
bool send_output(Context& ctx, const Request& req, bool is_stderr, const char* data, std::size_t size) {
    MsgEnv msg;
    if (!msg) return false;
    ERL_NIF_TERM message = output_message(msg, req, is_stderr, data, size);
    if (message == 0) return false;
    bool sent = true;  // a cancelled call's output is dropped: that is no failure
    ctx.unless_running_cancelled([&] { sent = msg.send(req.caller, message); });
    return sent;
}

}  // namespace

PyObject* erlang_write(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_write(is_stderr, text)");
        return nullptr;
    }
    // Only a context's own thread running a call whose caller waits for it:
    // the event loop's jobs have callers that may never receive (a
    // spawn_task's), and their output keeps going where it went.
    const Request* req = current_call().request;
    Context* ctx = current_call().context;
    if (req == nullptr || ctx == nullptr || req->reply_to != ReplyTo::Waiter) Py_RETURN_FALSE;
    int is_stderr = PyObject_IsTrue(args[0]);
    if (is_stderr < 0) return nullptr;
    // Lone surrogates (from surrogateescape) have no UTF-8: escape them.
    PyRef bytes = PyRef::steal(PyUnicode_AsEncodedString(args[1], "utf-8", "backslashreplace"));
    if (!bytes) return nullptr;
    auto size = static_cast<std::size_t>(PyBytes_GET_SIZE(bytes.get()));
    CurrentCall& call = current_call();  // its output counters are this request's
    // Each message costs the caller more than its text: count that too, so
    // a million one-byte writes are bounded as well.
    std::size_t cost = size + kMessageOverhead;
    try {  // nothing thrown (a lock's system_error) may cross into Python
        if (call.output_bytes + cost > kMaxOutputPerCall) {
            if (!call.output_cut) {
                call.output_cut = true;
                static const char kNote[] = "\n[erlang_python: output of this call past 16 MiB dropped]\n";
                send_output(*ctx, *req, true, kNote, sizeof kNote - 1);
            }
            Py_RETURN_TRUE;
        }
        call.output_bytes += cost;
        // A caller that timed out and cancelled has, once cancel returns,
        // got all the output there will be, and flushes it.
        if (!send_output(*ctx, *req, is_stderr != 0, PyBytes_AS_STRING(bytes.get()), size)) Py_RETURN_FALSE;
    } catch (...) {
        return PyErr_NoMemory();
    }
    Py_RETURN_TRUE;
}

}  // namespace ep
