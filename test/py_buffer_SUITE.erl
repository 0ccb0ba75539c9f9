%% Spec §10: binaries into Python without a copy ({buffer, Bin} ->
%% erlang.Buffer), large bytes and str out without a copy (binaries over the
%% object's storage, released on its own interpreter's thread), and
%% py:buffer/1 for anything that exports a buffer. Zero-copy is shown, not
%% assumed: by the addresses Python's buffer protocol reports (ctypes) where
%% ctypes loads, and by the memory the VM's process holds.
-module(py_buffer_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include("py_test.hrl").
-compile([export_all, nowarn_export_all]).

-define(MiB, 1048576).

all() ->
    [{group, worker}, {group, subinterp}, {group, owngil}, {group, isolated}, {group, once}].

groups() ->
    Cases = [buffer_reads_like_bytes, buffer_is_read_only, buffer_slices_share, buffer_index_errors,
             buffer_as_dict_key_and_back, not_a_buffer_tuple_stays_a_tuple, buffer_outlives_its_sender,
             buffer_is_the_binary_not_a_copy, large_bytes_out_share_storage, large_str_out_shares_storage,
             small_bytes_out_are_copies, shared_binary_outlives_python_refs, shared_bytes_in_send_and_callbacks,
             round_trips_10_mib_rss_flat, held_buffers_do_not_copy, py_buffer_kinds, py_buffer_errors],
    [{worker, [], Cases}, {subinterp, [], Cases}, {owngil, [], Cases},
     %% Python in another OS process: bytes cross a pipe, so the zero-copy
     %% cases have no meaning there; py:buffer and {buffer, B} do
     {isolated, [], [buffer_reads_like_bytes, buffer_outlives_its_sender, py_buffer_kinds, py_buffer_errors]},
     {once, [], [buffer_from_worker_to_subinterpreter, shared_binary_outlives_its_context,
                 numpy_frombuffer_zero_copy, numpy_py_buffer, numpy_py_buffer_errors]}].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    Config.

end_per_suite(_Config) ->
    py_test_util:stop().

init_per_group(once, Config) ->
    Config;
init_per_group(Mode, Config) ->
    py_test_util:start_group_context({buffer, Mode}, Mode, Config).

end_per_group(_Group, Config) ->
    py_test_util:stop_group_context(Config).

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    py_test_util:flush(),
    ok.

ctx(Config) ->
    ?config(ctx, Config).

%% address(obj): where the buffer protocol says obj's bytes are, or None
%% where ctypes cannot load (3.12's OWN_GIL subinterpreters).
address_helper(Ctx) ->
    ok = py:exec(Ctx, <<"
try:
    import ctypes
    class _View(ctypes.Structure):
        _fields_ = [('buf', ctypes.c_void_p), ('obj', ctypes.c_void_p), ('len', ctypes.c_ssize_t),
                    ('itemsize', ctypes.c_ssize_t), ('readonly', ctypes.c_int), ('ndim', ctypes.c_int),
                    ('format', ctypes.c_char_p), ('shape', ctypes.c_void_p), ('strides', ctypes.c_void_p),
                    ('suboffsets', ctypes.c_void_p), ('internal', ctypes.c_void_p)]
    _get = ctypes.pythonapi.PyObject_GetBuffer
    _get.argtypes = [ctypes.py_object, ctypes.POINTER(_View), ctypes.c_int]
    _release = ctypes.pythonapi.PyBuffer_Release
    _release.argtypes = [ctypes.POINTER(_View)]
    def address(obj):
        view = _View()
        if _get(obj, ctypes.byref(view), 0) != 0:
            raise BufferError('no buffer')
        try:
            return view.buf
        finally:
            _release(ctypes.byref(view))
except ImportError:
    def address(obj):
        return None
">>).

has_address(Ctx) ->
    {ok, A} = py:eval(Ctx, <<"address(b'x')">>, #{}),
    A =/= none.

%% Runs Code in the caller's env on Ctx with Vars bound as globals first
%% (py:exec takes no variables).
exec_with(Ctx, Code, Vars) ->
    case py:eval(Ctx, <<"globals().update(locals()) or exec(_code, globals())">>, Vars#{'_code' => Code}) of
        {ok, none} -> ok;
        Error -> Error
    end.

big(Size) ->
    binary:copy(<<"0123456789abcdef">>, Size div 16).

%% Every shared binary gone and every release done. Any process may hold
%% a dead one until its next collection (py_callbacks, which relays
%% callback arguments, say), so all are collected each time.
settle() ->
    case py_test_util:wait_until(fun() ->
             py_test_util:drain_gc(),
             {ok, #{shared_binaries := S, releases_pending := R}} = py_nif:runtime_info(),
             S =:= 0 andalso R =:= 0
         end) of
        true -> ok;
        false -> ct:fail({not_settled, py_nif:runtime_info()})
    end.

%% ---------------------------------------------------------------------------
%% {buffer, Bin} -> erlang.Buffer

buffer_reads_like_bytes(Config) ->
    Ctx = ctx(Config),
    B = big(?MiB),
    {ok, [?MiB, <<"012">>, 49, 102, <<"Buffer">>, true, true, ?MiB, true]} =
        py:eval(Ctx, <<"[len(b), bytes(b[0:3]), b[1], b[-1], type(b).__name__, memoryview(b).readonly,"
                       " bytes(b) == b, memoryview(b).nbytes, b == bytearray(bytes(b))]">>,
                #{b => {buffer, B}}),
    {ok, [0, <<>>, true]} = py:eval(Ctx, <<"[len(b), bytes(b), b == b'']">>, #{b => {buffer, <<>>}}),
    {ok, [[1, 2, 255], 258]} = py:eval(Ctx, <<"[list(b), sum(b)]">>, #{b => {buffer, <<1, 2, 255>>}}),
    %% A small binary (on the heap, not reference-counted) works alike.
    {ok, [<<"abc">>, <<"<erlang.Buffer of 3 bytes>">>]} =
        py:eval(Ctx, <<"[bytes(b), repr(b)]">>, #{b => {buffer, <<"abc">>}}),
    %% As an argument, a keyword argument, inside containers.
    {ok, 6} = py:call(Ctx, builtins, len, [{buffer, <<"abcdef">>}]),
    {ok, <<"abc">>} = py:call(Ctx, builtins, bytes, [], #{<<"source">> => {buffer, <<"abc">>}}),
    {ok, [3, 1]} = py:eval(Ctx, <<"[len(d['k'][0]), len(t[1])]">>,
                           #{d => #{k => [{buffer, <<"xyz">>}]}, t => {1, {buffer, <<"q">>}}}).

buffer_is_read_only(Config) ->
    Ctx = ctx(Config),
    B = big(65536),
    {error, {'TypeError', _}} = exec_with(Ctx, <<"memoryview(b)[0] = 1">>, #{b => {buffer, B}}),
    {error, {'TypeError', _}} = exec_with(Ctx, <<"b[0] = 1">>, #{b => {buffer, B}}),
    %% Asking for a writable view is refused.
    {error, {'TypeError', <<"readinto() argument must be read-write", _/binary>>}} =
        exec_with(Ctx, <<"import io\nio.BytesIO(b'123').readinto(b)">>, #{b => {buffer, B}}),
    {ok, <<"0123">>} = py:eval(Ctx, <<"bytes(b[:4])">>, #{b => {buffer, B}}),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"type(b)()">>, #{b => {buffer, B}}).

buffer_slices_share(Config) ->
    Ctx = ctx(Config),
    address_helper(Ctx),
    B = big(?MiB),
    {ok, [<<"Buffer">>, 3, <<"567">>, <<"02468">>, <<"fedcb">>, 0, <<"Buffer">>]} =
        py:eval(Ctx, <<"[type(b[5:8]).__name__, len(b[5:8]), bytes(b[5:8]), b[0:10:2], b[15:10:-1],"
                       " len(b[10:5]), type(b[2:][3:]).__name__]">>, #{b => {buffer, B}}),
    %% A slice is a Buffer over the same bytes: its address is the parent's plus the offset.
    case has_address(Ctx) of
        true -> {ok, true} = py:eval(Ctx, <<"address(b[100:200]) == address(b) + 100">>, #{b => {buffer, B}});
        false -> ok
    end,
    %% A slice goes back to Erlang as the sub-binary it is.
    {ok, <<"789abc">>} = py:eval(Ctx, <<"b[7:13]">>, #{b => {buffer, B}}).

buffer_index_errors(Config) ->
    Ctx = ctx(Config),
    E = #{b => {buffer, <<"abc">>}},
    {error, {'IndexError', _}} = py:eval(Ctx, <<"b[3]">>, E),
    {error, {'IndexError', _}} = py:eval(Ctx, <<"b[-4]">>, E),
    {error, {'IndexError', _}} = py:eval(Ctx, <<"b[2**70]">>, E),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"b['x']">>, E),
    {error, {'ValueError', _}} = py:eval(Ctx, <<"b[::0]">>, E),
    {ok, 99} = py:eval(Ctx, <<"b[-1]">>, E),
    {ok, false} = py:eval(Ctx, <<"b == 'abc'">>, E),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"b < b'abd'">>, E).

buffer_as_dict_key_and_back(Config) ->
    Ctx = ctx(Config),
    %% Hashes like bytes and equals its bytes: one key, whichever is used.
    {ok, [1, true]} = py:eval(Ctx, <<"[{b: 1}[b'abc'], hash(b) == hash(b'abc')]">>, #{b => {buffer, <<"abc">>}}),
    {ok, #{<<"abc">> := 1}} = py:eval(Ctx, <<"{b: 1}">>, #{b => {buffer, <<"abc">>}}),
    %% Handed back, a Buffer is its binary.
    B = big(?MiB),
    {ok, B2} = py:eval(Ctx, <<"b">>, #{b => {buffer, B}}),
    true = B2 =:= B,
    {ok, [<<"x">>, <<>>]} = py:eval(Ctx, <<"[b, b[1:1]]">>, #{b => {buffer, <<"x">>}}).

not_a_buffer_tuple_stays_a_tuple(Config) ->
    Ctx = ctx(Config),
    %% Only {buffer, Binary} is a buffer; other tuples stay tuples (§5).
    {ok, <<"tuple">>} = py:eval(Ctx, <<"type(t).__name__">>, #{t => {buffer, 1}}),
    {ok, {<<"buffer">>, 1}} = py:eval(Ctx, <<"t">>, #{t => {buffer, 1}}),
    {ok, 3} = py:eval(Ctx, <<"len(t)">>, #{t => {buffer, <<"a">>, <<"b">>}}),
    {error, {unsupported_term, _}} = py:eval(Ctx, <<"t">>, #{t => {buffer, <<1:3>>}}).

%% The binary stays alive while Python holds the Buffer, whoever made it:
%% the process that sent it may be gone and its heap collected.
buffer_outlives_its_sender(Config) ->
    Ctx = ctx(Config),
    {ok, Env} = py_context:create_local_env(Ctx),
    Ref = py_context:get_nif_ref(Ctx),
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
        B = big(4 * ?MiB),
        {ok, none} = py_nif:context_eval(Ref, <<"globals().update(locals()) or exec(_code, globals())">>,
                                         #{b => {buffer, B}, '_code' =>
                                               <<"import hashlib\nkept = b\nsent = hashlib.sha256(b).hexdigest()">>},
                                         Env),
        Self ! {digest, crypto:hash(sha256, B)}
    end),
    receive {digest, Digest} -> ok after ?PATIENCE -> Digest = ct:fail(no_digest) end,
    receive {'DOWN', Mon, process, Pid, normal} -> ok after ?PATIENCE -> ct:fail(sender_alive) end,
    erlang:garbage_collect(),
    Hex = string:lowercase(binary:encode_hex(Digest)),
    {ok, [Hex, Hex, ?MiB * 4]} =
        py_nif:context_eval(Ref, <<"[sent, hashlib.sha256(kept).hexdigest(), len(kept)]">>, #{}, Env).

buffer_is_the_binary_not_a_copy(Config) ->
    Ctx = ctx(Config),
    address_helper(Ctx),
    case has_address(Ctx) of
        false ->
            {skip, "ctypes does not load in this interpreter; see held_buffers_do_not_copy"};
        true ->
            B = big(?MiB),
            %% Two calls, one binary: both Buffers see the same bytes (the
            %% first is kept, so its memory cannot be reused by the second).
            ok = exec_with(Ctx, <<"first = b\nfirst_at = address(b)">>, #{b => {buffer, B}}),
            {ok, true} = py:eval(Ctx, <<"address(b) == first_at">>, #{b => {buffer, B}}),
            %% A copy made in Erlang is another binary, another address.
            {ok, false} = py:eval(Ctx, <<"address(b) == first_at">>, #{b => {buffer, binary:copy(B)}})
    end.

%% ---------------------------------------------------------------------------
%% Large bytes and str out: binaries over the object's storage

large_bytes_out_share_storage(Config) ->
    Ctx = ctx(Config),
    address_helper(Ctx),
    ok = py:exec(Ctx, <<"import os\nout = os.urandom(1 << 20)">>),
    {ok, Bin} = py:eval(Ctx, <<"out">>, #{}),
    {ok, Digest} = py:eval(Ctx, <<"__import__('hashlib').sha256(out).digest()">>, #{}),
    Digest = crypto:hash(sha256, Bin),
    ?assertEqual(?MiB, byte_size(Bin)),
    {ok, #{shared_binaries := Shared}} = py_nif:runtime_info(),
    ?assert(Shared >= 1),
    %% Handed back as a buffer, it is the bytes object's own storage:
    %% zero copies out and zero copies in.
    case has_address(Ctx) of
        true -> {ok, true} = py:eval(Ctx, <<"address(b) == address(out)">>, #{b => {buffer, Bin}});
        false -> ok
    end,
    %% At 64 KiB and over; also inside containers.
    {ok, [A, {B, _}]} = py:eval(Ctx, <<"[b'a' * 65536, (b'b' * 70000, 1)]">>, #{}),
    {65536, 70000} = {byte_size(A), byte_size(B)},
    %% This process holds three; other tests' may come and go meanwhile.
    {ok, #{shared_binaries := Shared2}} = py_nif:runtime_info(),
    ?assert(Shared2 >= 3),
    %% (Used after the count, so none is garbage before it.)
    [?MiB, 65536, 70000] = [byte_size(X) || X <- [Bin, A, B]],
    ok.

large_str_out_shares_storage(Config) ->
    Ctx = ctx(Config),
    {ok, [Ascii, Text]} = py:eval(Ctx, <<"['x' * 100000, '\\u00e9\\u20ac' * 50000]">>, #{}),
    ?assertEqual(binary:copy(<<"x">>, 100000), Ascii),
    ?assertEqual(binary:copy(<<"é€"/utf8>>, 50000), Text),
    {ok, #{shared_binaries := Shared}} = py_nif:runtime_info(),
    ?assert(Shared >= 2).

small_bytes_out_are_copies(Config) ->
    Ctx = ctx(Config),
    settle(),
    {ok, Small} = py:eval(Ctx, <<"[b'a' * 65535, 'x' * 1000, bytearray(100000)]">>, #{}),
    [65535, 1000, 100000] = [byte_size(S) || S <- Small],
    %% bytearray is mutable: copied whatever its size.
    {ok, #{shared_binaries := 0}} = py_nif:runtime_info().

shared_binary_outlives_python_refs(Config) ->
    Ctx = ctx(Config),
    settle(),
    ok = py:exec(Ctx, <<"gone = []\nclass B(bytes):\n    def __del__(self): gone.append(1)\nheld = B(b'z' * 200000)">>),
    {ok, Bin} = py:eval(Ctx, <<"held">>, #{}),
    %% Python lets go; the binary holds the object.
    ok = py:exec(Ctx, <<"del held">>),
    {ok, []} = py:eval(Ctx, <<"gone">>, #{}),
    ?assertEqual(binary:copy(<<"z">>, 200000), Bin),
    %% Erlang lets go: the object is released on its own thread.
    erlang:garbage_collect(),
    settle(),
    {ok, [1]} = py:eval(Ctx, <<"gone">>, #{}).

shared_bytes_in_send_and_callbacks(Config) ->
    Ctx = ctx(Config),
    Self = self(),
    py:register_function(buffer_echo_size, fun([B]) -> byte_size(B) end),
    ok = py:exec(Ctx, <<"import erlang\npayload = b'p' * 300000">>),
    {ok, 300000} = py:eval(Ctx, <<"erlang.call('buffer_echo_size', payload)">>, #{}),
    ok = exec_with(Ctx, <<"erlang.send(me, (payload, 'x' * 70000))">>, #{me => Self}),
    receive
        {P, X} ->
            ?assertEqual(binary:copy(<<"p">>, 300000), P),
            ?assertEqual(binary:copy(<<"x">>, 70000), X)
    after ?PATIENCE -> ct:fail(no_message)
    end,
    py:unregister_function(buffer_echo_size).

%% ---------------------------------------------------------------------------
%% Memory: measured, not timed

round_trips_10_mib_rss_flat(Config) ->
    Ctx = ctx(Config),
    B = big(10 * ?MiB),
    ok = py:exec(Ctx, <<"def echo(b):\n    return b">>),
    Round = fun() -> {ok, R} = py:call(Ctx, '__main__', echo, [{buffer, B}]), R =:= B end,
    [true = Round() || _ <- lists:seq(1, 50)],
    erlang:garbage_collect(),
    Before = py_test_util:rss_kb(),
    [true = Round() || _ <- lists:seq(1, 1000)],
    erlang:garbage_collect(),
    Growth = py_test_util:rss_kb() - Before,
    ct:pal("RSS growth over 1000 round trips of 10 MiB: ~p KiB", [Growth]),
    ?assert(py_test_util:rss_growth_ok(Growth, 20 * 1024)).

%% Holding a payload many times over costs it once: Python keeps 20 Buffers
%% of one 10 MiB binary, Erlang keeps 20 results of one 10 MiB bytes.
held_buffers_do_not_copy(Config) ->
    Ctx = ctx(Config),
    B = big(10 * ?MiB),
    ok = py:exec(Ctx, <<"held = []\nimport os\nout = os.urandom(10 << 20)">>),
    erlang:garbage_collect(),
    Before = py_test_util:rss_kb(),
    [{ok, none} = py:eval(Ctx, <<"held.append(b)">>, #{b => {buffer, B}}) || _ <- lists:seq(1, 20)],
    Results = [element(2, {ok, _} = py:eval(Ctx, <<"out">>, #{})) || _ <- lists:seq(1, 20)],
    Growth = py_test_util:rss_kb() - Before,
    ct:pal("RSS growth holding 20 + 20 views of 10 MiB: ~p KiB (copies would be 400 MiB)", [Growth]),
    %% Copies would take 400 MiB; sharing takes none of it.
    ?assert(py_test_util:rss_growth_ok(Growth, 100 * 1024)),
    {ok, 20} = py:eval(Ctx, <<"len(held)">>, #{}),
    20 = length([R || R <- Results, byte_size(R) =:= 10 * ?MiB]),
    ok = py:exec(Ctx, <<"del held, out">>).

%% ---------------------------------------------------------------------------
%% py:buffer/1

py_buffer_kinds(Config) ->
    Ctx = ctx(Config),
    Eval = fun(Expr) -> {ok, H} = py:eval(Ctx, Expr, #{}), true = py:is_handle(H), H end,
    {ok, #{data := <<1.5:64/float-native, -2.0:64/float-native>>, format := <<"d">>, itemsize := 8, shape := [2]}} =
        py:buffer(Eval(<<"__import__('array').array('d', [1.5, -2.0])">>)),
    {ok, #{data := <<1:32/signed-native, -1:32/signed-native, 7:32/signed-native>>, itemsize := 4, shape := [3]}} =
        py:buffer(Eval(<<"__import__('array').array('i', [1, -1, 7])">>)),
    {ok, #{data := <<"abcdef">>, format := <<"B">>, itemsize := 1, shape := [6]}} =
        py:buffer(Eval(<<"memoryview(b'abcdef')">>)),
    %% A 2-D view (memoryview.cast) keeps its shape; a 0-d one has none.
    {ok, #{data := <<0,1,2,3,4,5>>, shape := [2, 3]}} =
        py:buffer(Eval(<<"memoryview(bytes(range(6))).cast('B', [2, 3])">>)),
    {ok, #{data := <<7:64/signed-native>>, format := <<"q">>, shape := []}} =
        py:buffer(Eval(<<"memoryview(__import__('array').array('q', [7])).cast('B').cast('q', [])">>)),
    %% bytes, bytearray and erlang.Buffer convert to binaries: never handles.
    {ok, <<0, 0, 0>>} = py:eval(Ctx, <<"bytearray(3)">>, #{}),
    {ok, #{data := <<"12">>}} = py:buffer(Eval(<<"__import__('array').array('B', b'12')">>)),
    %% mmap: a writable exporter, copied once.
    {ok, #{data := <<0, 0, 0, 0>>, shape := [4]}} = py:buffer(Eval(<<"__import__('mmap').mmap(-1, 4)">>)).

py_buffer_errors(Config) ->
    Ctx = ctx(Config),
    Eval = fun(Expr) -> {ok, H} = py:eval(Ctx, Expr, #{}), H end,
    {error, not_a_buffer} = py:buffer(Eval(<<"object()">>)),
    {error, not_a_buffer} = py:buffer(Eval(<<"{1, 2}">>)),
    {error, not_contiguous} = py:buffer(Eval(<<"memoryview(b'abcdef')[::2]">>)),
    {error, not_contiguous} = py:buffer(Eval(<<"memoryview(bytes(range(6))).cast('B', [2, 3])[::-1]">>)),
    %% The exporter itself fails.
    {error, {'ValueError', _}} = py:buffer(Eval(<<"[m := memoryview(b'x'), m.release()][0]">>)),
    %% Past the bound on any result (1 GiB): refused, not allocated. An
    %% anonymous mmap of that size costs address space, not memory.
    {error, {result_too_large, 1073741824}} = py:buffer(Eval(<<"__import__('mmap').mmap(-1, (1 << 30) + 8)">>)),
    {error, {badarg, handle}} = py:buffer(<<"bytes">>),
    {error, {badarg, handle}} = py:buffer(make_ref()),
    %% A handle whose context is gone.
    {ok, Tmp} = py_context:start_link(buffer_tmp, ?config(mode, Config)),
    {ok, H} = py:eval(Tmp, <<"bytearray(3)">>, #{}),
    ok = py_context:stop(Tmp),
    {error, _} = py:buffer(H).

%% ---------------------------------------------------------------------------
%% Across interpreters, and after a context

%% A binary has no interpreter: a worker context's Buffer goes back to
%% Erlang as the binary it is, and a subinterpreter gets its own Buffer over
%% those same bytes (no copy, nothing Python shared between interpreters).
%% A handle to the worker's Buffer object itself is refused there.
buffer_from_worker_to_subinterpreter(_Config) ->
    case py_context:start_link(buffer_sub, subinterp) of
        {error, {_, Why}} -> {skip, Why};
        {ok, Sub} ->
            {ok, W} = py_context:start_link(buffer_worker, worker),
            try
                address_helper(W),
                address_helper(Sub),
                B = big(?MiB),
                ok = exec_with(W, <<"class Box:\n    def __init__(self, v): self.v = v\nkept = b">>, #{b => {buffer, B}}),
                {ok, FromWorker} = py:eval(W, <<"kept">>, #{}),
                true = FromWorker =:= B,
                {ok, Digest} = py:eval(Sub, <<"__import__('hashlib').sha256(b).digest()">>, #{b => {buffer, FromWorker}}),
                Digest = crypto:hash(sha256, B),
                case {has_address(W), has_address(Sub)} of
                    {true, true} ->
                        {ok, At} = py:eval(W, <<"address(kept)">>, #{}),
                        {ok, At} = py:eval(Sub, <<"address(b)">>, #{b => {buffer, FromWorker}});
                    _ -> ok
                end,
                {ok, BoxH} = py:eval(W, <<"Box(kept)">>, #{}),
                {error, env_wrong_interpreter} = py:call(Sub, builtins, id, [BoxH])
            after
                py_context:stop(W),
                py_context:stop(Sub)
            end
    end.

%% A subinterpreter context ends while Erlang still holds a binary over one
%% of its bytes objects: the bytes stay readable; the release is dropped
%% unread (the interpreter that owned the object is gone).
shared_binary_outlives_its_context(_Config) ->
    case py_context:start_link(buffer_short, owngil) of
        {error, {_, Why}} -> {skip, Why};
        {ok, Short} ->
            Self = self(),
            {Pid, Mon} = spawn_monitor(fun() ->
                {ok, Bin} = py:eval(Short, <<"bytes(range(256)) * 4096">>, #{}),
                ok = py_context:stop(Short),
                erlang:garbage_collect(),
                {ok, #{shared_binaries := S}} = py_nif:runtime_info(),
                Self ! {read, S >= 1, Bin =:= binary:copy(list_to_binary(lists:seq(0, 255)), 4096)}
            end),
            receive {read, Counted, Intact} -> {true, true} = {Counted, Intact} after ?PATIENCE -> ct:fail(no_read) end,
            receive {'DOWN', Mon, process, Pid, normal} -> ok after ?PATIENCE -> ct:fail(reader_alive) end,
            %% The binary went with its process; its release went nowhere.
            settle()
    end.

%% ---------------------------------------------------------------------------
%% numpy (Debian's python3-numpy, for its 3.11; worker mode)

numpy_ctx() ->
    {ok, Ctx} = py_context:start_link(buffer_numpy, worker),
    unlink(Ctx),
    case py:exec(Ctx, <<"import numpy">>) of
        ok -> {ok, Ctx};
        {error, _} ->
            py_context:stop(Ctx),
            {skip, "numpy is not installed for this Python (Debian's python3-numpy serves /usr/bin/python3)"}
    end.

with_numpy(Fun) ->
    case numpy_ctx() of
        {skip, _} = Skip -> Skip;
        {ok, Ctx} ->
            try Fun(Ctx) after py_context:stop(Ctx) end
    end.

numpy_frombuffer_zero_copy(_Config) ->
    with_numpy(fun(Ctx) ->
        Floats = << <<(X * 0.5):64/float-native>> || X <- lists:seq(1, 100000) >>,
        {ok, Arr} = py:call(Ctx, numpy, frombuffer, [{buffer, Floats}], #{dtype => <<"f8">>}),
        true = py:is_handle(Arr),
        {ok, [100000, 0.5, 50000.0, false]} =
            py:eval(Ctx, <<"[a.size, float(a[0]), float(a[-1]), bool(a.flags.writeable)]">>, #{a => Arr}),
        {error, {'ValueError', _}} = exec_with(Ctx, <<"a[0] = 1.0">>, #{a => Arr}),
        %% The array's data pointer is the binary's bytes.
        address_helper(Ctx),
        {ok, true} = py:eval(Ctx, <<"a.__array_interface__['data'][0] == address(b)">>, #{a => Arr, b => {buffer, Floats}}),
        %% And back in one copy.
        {ok, #{data := Floats, format := <<"d">>, itemsize := 8, shape := [100000]}} = py:buffer(Arr),
        ok
    end).

numpy_py_buffer(_Config) ->
    with_numpy(fun(Ctx) ->
        Eval = fun(Expr) -> {ok, H} = py:eval(Ctx, Expr, #{}), H end,
        {ok, #{data := D, format := Fmt, itemsize := 4, shape := [2, 3]}} =
            py:buffer(Eval(<<"numpy.arange(6, dtype=numpy.float32).reshape(2, 3)">>)),
        <<0.0:32/float-native, 1.0:32/float-native, 2.0:32/float-native, 3.0:32/float-native, 4.0:32/float-native,
          5.0:32/float-native>> = D,
        true = lists:member(Fmt, [<<"f">>, <<"<f">>, <<"=f">>]),
        %% A 0-d array: one item, no dimensions.
        {ok, #{data := <<42:64/signed-native>>, shape := [], itemsize := 8}} = py:buffer(Eval(<<"numpy.array(42, dtype=numpy.int64)">>)),
        %% A contiguous slice is fine; an empty array too.
        {ok, #{data := <<2:8, 3:8>>, shape := [2]}} = py:buffer(Eval(<<"numpy.arange(10, dtype=numpy.uint8)[2:4]">>)),
        {ok, #{data := <<>>, shape := [0, 4]}} = py:buffer(Eval(<<"numpy.zeros((0, 4))">>)),
        %% A structured dtype: one item is a record.
        {ok, #{itemsize := 12, shape := [2], data := Rec}} =
            py:buffer(Eval(<<"numpy.zeros(2, dtype=[('a', '<i4'), ('b', '<f8')])">>)),
        24 = byte_size(Rec)
    end).

numpy_py_buffer_errors(_Config) ->
    with_numpy(fun(Ctx) ->
        Eval = fun(Expr) -> {ok, H} = py:eval(Ctx, Expr, #{}), H end,
        {error, not_contiguous} = py:buffer(Eval(<<"numpy.arange(12.0).reshape(3, 4)[:, 1]">>)),
        {error, not_contiguous} = py:buffer(Eval(<<"numpy.arange(12.0).reshape(3, 4).T">>)),
        {ok, #{shape := [3]}} = py:buffer(Eval(<<"numpy.ascontiguousarray(numpy.arange(12.0).reshape(3, 4)[:, 1])">>)),
        %% An object array's items are pointers to Python objects: no data.
        {error, not_a_buffer} = py:buffer(Eval(<<"numpy.array([object()], dtype=object)">>))
    end).
