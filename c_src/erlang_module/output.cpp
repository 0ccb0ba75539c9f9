#include "erlang_module/output.h"

#include <atomic>
#include <cstring>

#include "context/context.h"
#include "context/current_call.h"
#include "context/request.h"
#include "context/stream.h"
#include "erl/atoms.h"
#include "erl/erl_terms.h"
#include "erl/msg_env.h"
#include "erlang_module/erlang_functions.h"
#include "erlang_module/erlang_module.h"
#include "runtime/py_ref.h"

namespace ep {
namespace {

constexpr std::size_t kMaxOutputPerCall = std::size_t{16} << 20;  // 16 MiB
constexpr std::size_t kMaxRelayed = std::size_t{16} << 20;        // at py_relay, not yet written
constexpr std::size_t kMessageOverhead = 256;  // bytes, roughly, of one message beyond its text

constexpr char kCallCutNote[] = "\n[erlang_python: output of this call past 16 MiB dropped]\n";
constexpr char kRelayCutNote[] = "\n[erlang_python: output dropped: 16 MiB wait for slow group leaders]\n";

std::atomic<std::size_t> relayed_in_flight{0};
std::atomic<bool> relay_cut{false};
// Every write relayed, from any thread: a thread of the event loop's
// executor prints for the loop's jobs too.
std::atomic<std::uint64_t> relayed_writes{0};

ERL_NIF_TERM text_binary(ErlNifEnv* env, const char* data, std::size_t size) {
    ERL_NIF_TERM bin;
    unsigned char* out = enif_make_new_binary(env, size, &bin);
    if (out == nullptr) return 0;
    if (size > 0) std::memcpy(out, data, size);
    return bin;
}

ERL_NIF_TERM stream_atom(ErlNifEnv* env, bool is_stderr) {
    return enif_make_atom(env, is_stderr ? "stderr" : "stdout");
}

// {Tag, py_output, Stream, Binary} to the waiting caller, unless its call
// has been cancelled: only the send itself runs under the queue's lock.
bool send_to_waiter(Context& ctx, const Request& req, bool is_stderr, const char* data, std::size_t size) {
    MsgEnv msg;
    if (!msg) return false;
    ERL_NIF_TERM bin = text_binary(msg.get(), data, size);
    if (bin == 0) return false;
    ERL_NIF_TERM message = enif_make_tuple4(msg.get(), msg.copy(req.tag), enif_make_atom(msg.get(), "py_output"),
                                            stream_atom(msg.get(), is_stderr), bin);
    bool sent = true;  // a cancelled call's output is dropped: that is no failure
    ctx.unless_running_cancelled([&] { sent = msg.send(req.caller, message); });
    return sent;
}

// {'$py_output', Pid, Stream, Binary, Cost} to py_relay. The cost stays
// counted until py_relay reports it written.
bool send_to_relay(const ErlNifPid& caller, bool is_stderr, const char* data, std::size_t size, bool forced) {
    std::size_t cost = size + kMessageOverhead;
    std::size_t before = relayed_in_flight.fetch_add(cost);
    if (!forced && before + cost > kMaxRelayed) {
        relayed_output_written(cost);
        if (!relay_cut.exchange(true)) send_to_relay(caller, true, kRelayCutNote, sizeof kRelayCutNote - 1, true);
        return true;  // dropped, as said
    }
    MsgEnv msg;
    ErlNifPid relay;
    ERL_NIF_TERM bin = msg ? text_binary(msg.get(), data, size) : 0;
    if (bin == 0 || !enif_whereis_pid(nullptr, atoms::py_relay, &relay) ||
        !msg.send(relay, enif_make_tuple5(msg.get(), atoms::py_output_tag, make_pid(msg.get(), caller),
                                          stream_atom(msg.get(), is_stderr), bin, enif_make_uint64(msg.get(), cost)))) {
        relayed_output_written(cost);
        return false;
    }
    relayed_writes.fetch_add(1, std::memory_order_relaxed);
    return true;
}

// One write, to whoever hears of it; false when nobody does.
bool route(PyObject* module, bool is_stderr, const char* data, std::size_t size) {
    CurrentCall& call = current_call();
    const Request* req = call.request;
    Context* ctx = call.context;
    bool waiter = req != nullptr && ctx != nullptr && req->reply_to == ReplyTo::Waiter;
    ErlNifPid caller;
    if (!waiter && !calling_pid(erlang_module_state(module), &caller)) return false;
    auto deliver = [&](bool err, const char* text, std::size_t n) {
        bool sent = waiter ? send_to_waiter(*ctx, *req, err, text, n) : send_to_relay(caller, err, text, n, false);
        if (sent && !waiter && req != nullptr) {
            req->printed = true;  // its answer follows the text through py_relay
            if (req->stream) req->stream->mark_printed();
        }
        return sent;
    };
    // Only a request's own output counts against its bound (the event
    // loop's tasks run outside any request); each message costs the caller
    // more than its text, so a million one-byte writes are bounded as well.
    if (req != nullptr) {
        std::size_t cost = size + kMessageOverhead;
        if (call.output_bytes + cost > kMaxOutputPerCall) {
            if (!call.output_cut) {
                call.output_cut = true;
                deliver(true, kCallCutNote, sizeof kCallCutNote - 1);
            }
            return true;
        }
        call.output_bytes += cost;
    }
    return deliver(is_stderr, data, size);
}

}  // namespace

PyObject* erlang_write(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_write(is_stderr, text)");
        return nullptr;
    }
    int is_stderr = PyObject_IsTrue(args[0]);
    if (is_stderr < 0) return nullptr;
    // Lone surrogates (from surrogateescape) have no UTF-8: escape them.
    PyRef bytes = PyRef::steal(PyUnicode_AsEncodedString(args[1], "utf-8", "backslashreplace"));
    if (!bytes) return nullptr;
    bool routed = false;
    try {  // nothing thrown (a lock's system_error) may cross into Python
        routed = route(module, is_stderr != 0, PyBytes_AS_STRING(bytes.get()),
                       static_cast<std::size_t>(PyBytes_GET_SIZE(bytes.get())));
    } catch (...) {
        return PyErr_NoMemory();
    }
    if (PyErr_Occurred()) return nullptr;
    return PyBool_FromLong(routed ? 1 : 0);
}

void relayed_output_written(std::size_t cost) {
    std::size_t now = relayed_in_flight.load();
    // Never below zero: a reset may have forgotten what this was part of.
    while (!relayed_in_flight.compare_exchange_weak(now, now > cost ? now - cost : 0)) {
    }
    if (relayed_in_flight.load() < kMaxRelayed / 2) relay_cut.store(false);
}

void relayed_output_reset() {
    relayed_in_flight.store(0);
    relay_cut.store(false);
}

std::uint64_t relayed_writes_so_far() { return relayed_writes.load(std::memory_order_relaxed); }

}  // namespace ep
