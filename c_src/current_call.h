// What the calling thread is doing for erlang_python right now: which
// context it is the thread of, and which request it runs. Python code
// calling into the erlang module reads this (erlang.self(), erlang.call).
#pragma once

namespace ep {

class Context;
struct Request;

struct CurrentCall {
    Context* context = nullptr;       // set on context threads only
    const Request* request = nullptr;  // the innermost request being run
};

// Thread-local; plain pointers, valid while the frames that set them run.
CurrentCall& current_call();

// Sets the request for a scope (requests nest while callbacks wait).
class RequestScope {
public:
    explicit RequestScope(const Request* req) : saved_(current_call().request) { current_call().request = req; }
    RequestScope(const RequestScope&) = delete;
    RequestScope& operator=(const RequestScope&) = delete;
    ~RequestScope() { current_call().request = saved_; }

private:
    const Request* saved_;
};

}  // namespace ep
