// OS threads with stacks large enough for Python.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace ep {

// Python code recurses deeply (repr of nested lists, the compiler, json), and
// scheduler stacks are far too small for it (design.md fact 5), so every
// thread that runs Python is made here with a large stack.
constexpr std::size_t kPythonThreadStack = 16 * 1024 * 1024;

// Starts `body` on a detached thread. Returns false, with a reason in `error`,
// when the thread cannot be created. `name` shows up in gdb and top (max 15 chars).
bool spawn_detached_thread(std::function<void()> body, const std::string& name, std::string* error,
                           std::size_t stack_bytes = kPythonThreadStack);

}  // namespace ep
