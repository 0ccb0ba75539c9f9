// Python source as it arrives from Erlang.
#pragma once

#include <string>
#include <string_view>

namespace ep {

// Source embedded in Erlang is usually indented along with the Erlang code
// around it. When every non-blank line shares a leading run of white space,
// strip it (Python would otherwise reject the first line as indented).
// Blank lines become empty.
std::string dedent(std::string_view source);

}  // namespace ep
