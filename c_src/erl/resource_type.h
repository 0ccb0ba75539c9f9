// Opening a NIF resource type at load time, one way for every layer.
#pragma once

#include <erl_nif.h>

namespace ep {

// Call from the load callback. A type with a `down` callback can be
// monitored; nullptr if the VM refused the type.
inline ErlNifResourceType* open_resource_type(ErlNifEnv* env, const char* name, ErlNifResourceDtor* dtor,
                                              ErlNifResourceDown* down = nullptr) {
    ErlNifResourceTypeInit init{};
    init.dtor = dtor;
    init.down = down;
    init.members = down ? 3 : 1;
    return enif_init_resource_type(env, name, &init, ERL_NIF_RT_CREATE, nullptr);
}

}  // namespace ep
