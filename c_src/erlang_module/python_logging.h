// Python's `logging` into Erlang's `logger` (spec §8): a handler on the
// root logger of every interpreter hands each record to the py_logger
// process, which logs it.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include "erl/msg_env.h"

namespace ep {

constexpr long kLogError = 40;  // logging.ERROR

// Hands a record to the py_logger process, as erlang.LogHandler does:
// {py_log, Level, Name, Message, #{caller => Pid}} (terms built in `env`,
// which is cleared). Dropped when py_logger is not running. Never blocks.
void send_log_record(MsgEnv& env, long level, ERL_NIF_TERM name, ERL_NIF_TERM message, ERL_NIF_TERM caller,
                     ErlNifEnv* caller_env = nullptr);

// erlang._log(levelno, name, message, pathname, lineno, funcname): sends the
// record to the process registered as py_logger; dropped if there is none.
// Never blocks.
PyObject* erlang_log(PyObject* module, PyObject* const* args, Py_ssize_t nargs);

// GIL held, erlang module loaded: once this interpreter imports logging,
// erlang.LogHandler exists and one is on the root logger. False, with a
// Python exception set, on failure.
bool install_log_handler();

}  // namespace ep
