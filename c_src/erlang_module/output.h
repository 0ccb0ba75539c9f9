// Python's sys.stdout and sys.stderr, while serving a call, go to the
// calling process's group leader (spec §13).
#pragma once

#include <Python.h>

#include <cstddef>
#include <cstdint>

namespace ep {

// erlang._write(is_stderr, text) -> bool: routes `text` to the process
// whose work runs on this thread.
// - A py:call/eval/exec waiting in receive on a context's thread gets it
//   itself, as {Tag, py_output, stdout | stderr, Binary} before its answer.
// - Any other caller (spawn_call, cast, stream, event-loop job or task) has
//   it written to its group leader by the py_relay process, as
//   {'$py_output', Pid, Stream, Binary, Cost}; the request's answer then
//   takes the same way, so it still comes after the text.
// False when no process is served here: the caller writes to the stream it
// had. Bounded: past kMaxOutputPerCall bytes in one request, and past as
// many bytes sent to py_relay and not yet written, output is dropped with
// one line saying so; nothing here ever waits for a group leader.
PyObject* erlang_write(PyObject* module, PyObject* const* args, Py_ssize_t nargs);

// py_relay wrote (or gave up on) `cost` bytes of what it was sent.
void relayed_output_written(std::size_t cost);
// py_relay (re)started: whatever its predecessor held is gone.
void relayed_output_reset();

// Writes sent through py_relay so far, from any thread: an event-loop job
// during which any were made sends its answer the same way.
std::uint64_t relayed_writes_so_far();

}  // namespace ep
