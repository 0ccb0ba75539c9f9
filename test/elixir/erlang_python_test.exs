# ExUnit tests of erlang_python from Elixir (spec §13), run by `make elixir`
# (part of `make test`) against the build in _build/default:
#
#     elixir -pa _build/default/lib/erlang_python/ebin test/elixir/erlang_python_test.exs
#
# Real Elixir, real VM, real Python: what an Elixir user writes on day one.
ExUnit.start(capture_log: true)

defmodule ErlangPython.CallsTest do
  use ExUnit.Case, async: false

  setup_all do
    {:ok, _} = Application.ensure_all_started(:erlang_python)
    :ok
  end

  test "calls, evals and execs" do
    assert {:ok, 4.0} = :py.call(:math, :sqrt, [16])
    assert {:ok, 1_267_650_600_228_229_401_496_703_205_376} = :py.eval("2 ** 100")
    assert :ok = :py.exec("def greet(name):\n    return 'hello ' + name\n")
    assert {:ok, "hello José"} = :py.call(:__main__, :greet, ["José"])
    assert {:ok, 30} = :py.eval("x * y", %{x: 5, y: 6})
  end

  test "Elixir terms going in and coming back" do
    # nil is None; maps with atom keys are dicts with str keys
    assert {:ok, true} = :py.eval("v is None", %{v: nil})
    assert {:ok, %{"a" => [1, 2.5, "three"]}} = :py.call(:builtins, :dict, [], %{a: [1, 2.5, "three"]})
    assert {:ok, {1, "two"}} = :py.eval("(1, 'two')")
    assert {:ok, :none} = :py.eval("None")
    assert {:ok, <<0, 255>>} = :py.eval("b'\\x00\\xff'")
  end

  test "Python exceptions are {:error, {type, message}}" do
    assert {:error, {:ZeroDivisionError, "division by zero"}} = :py.eval("1/0")
    assert {:error, {:ModuleNotFoundError, _}} = :py.call(:no_such_module_for_elixir, :f, [])
    assert is_binary(:py.last_traceback())
  end

  test "each Task has its own env, released when it ends" do
    ctx = :py.context(1)
    tasks =
      for i <- 1..20 do
        Task.async(fn ->
          :ok = :py.exec(ctx, "mine = #{i}")
          {:ok, value} = :py.eval(ctx, "mine")
          value
        end)
      end

    assert Enum.map(tasks, &Task.await/1) == Enum.to_list(1..20)
    # this process never defined `mine`
    assert {:error, {:NameError, _}} = :py.eval(ctx, "mine")
  end

  test "Elixir functions called from Python" do
    :ok = :py.register_function(:elixir_upcase, fn [s] -> String.upcase(s) end)
    :ok = :py.register_function(:elixir_sum, fn args -> Enum.sum(args) end)

    try do
      assert {:ok, "ÉLIXIR"} = :py.eval("__import__('erlang').call('elixir_upcase', 'élixir')")
      assert {:ok, 6} = :py.eval("__import__('erlang').call('elixir_sum', 1, 2, 3)")
      # an Elixir exception comes to Python as an exception
      :ok = :py.register_function(:elixir_raises, fn [] -> raise ArgumentError, "from Elixir" end)

      assert {:error, {_type, message}} = :py.eval("__import__('erlang').call('elixir_raises')")
      assert message =~ "from Elixir"
    after
      :py.unregister_function(:elixir_upcase)
      :py.unregister_function(:elixir_sum)
      :py.unregister_function(:elixir_raises)
    end
  end

  test "calls that do not wait, and streams" do
    ref = :py.spawn_call(:math, :factorial, [20])
    assert {:ok, 2_432_902_008_176_640_000} = :py.await(ref)
    assert {:ok, [0, 1, 2]} = :py.stream(:builtins, :range, [3])
  end

  test "print() from Python is captured by ExUnit's capture_io" do
    import ExUnit.CaptureIO

    assert capture_io(fn -> :ok = :py.exec("print('hello from Python')") end) == "hello from Python\n"

    # calls that do not wait print where the caller does too, before the answer
    assert capture_io(fn -> {:ok, :none} = :py.await(:py.spawn_call(:builtins, :print, ["async"])) end) ==
             "async\n"

    assert capture_io(fn -> {:ok, :none} = :py_event_loop.run(:builtins, :print, ["loop"]) end) == "loop\n"

    # an Elixir fn Python calls prints at its caller's group leader
    :ok = :py.register_function(:elixir_shout, fn [text] -> IO.puts("elixir: " <> text) end)
    assert capture_io(fn -> {:ok, _} = :py.eval("__import__('erlang').elixir_shout('hi')") end) == "elixir: hi\n"
    :ok = :py.unregister_function(:elixir_shout)
  end

  test "the asyncio event loop" do
    :ok = :py.exec("import asyncio\nasync def later(x):\n    await asyncio.sleep(0.01)\n    return x * 2\n")
    assert {:ok, 84} = :py_event_loop.run(:__main__, :later, [42])
    refs = for i <- 1..10, do: :py_event_loop.create_task(:__main__, :later, [i])
    assert Enum.map(refs, &:py_event_loop.await/1) == for(i <- 1..10, do: {:ok, i * 2})
  end

  test "a context supervised by an Elixir supervisor" do
    children = [%{id: :elixir_ctx, start: {:py_context, :start_link, [:elixir_ctx, :worker]}}]
    {:ok, sup} = Supervisor.start_link(children, strategy: :one_for_one)
    [{:elixir_ctx, ctx, :worker, _}] = Supervisor.which_children(sup)
    assert {:ok, 2} = :py.eval(ctx, "1 + 1")
    Process.exit(ctx, :kill)
    # the supervisor starts a new one
    new_ctx = wait_for_restart(sup, ctx)
    assert {:ok, 3} = :py.eval(new_ctx, "1 + 2")
    Supervisor.stop(sup)
  end

  defp wait_for_restart(sup, old) do
    case Supervisor.which_children(sup) do
      [{:elixir_ctx, pid, :worker, _}] when is_pid(pid) and pid != old ->
        case :py_context.info(pid) do
          {:ok, _} -> pid
          _ -> wait_for_restart(sup, old)
        end

      _ ->
        Process.sleep(1)
        wait_for_restart(sup, old)
    end
  end
end

defmodule ErlangPython.MixDependencyTest do
  # A Mix project depending on this checkout by path, built by Debian's
  # rebar3 (MIX_REBAR3: Mix would otherwise fetch its own from hex), then
  # run: what the README tells an Elixir user to do.
  use ExUnit.Case, async: false

  @repo Path.expand("../..", __DIR__)

  test "a Mix project with a path dependency builds and calls Python" do
    dir = Path.join(System.tmp_dir!(), "ep_mix_#{System.unique_integer([:positive])}")
    File.mkdir_p!(Path.join(dir, "lib"))

    File.write!(Path.join(dir, "mix.exs"), """
    defmodule EpMixUser.MixProject do
      use Mix.Project
      def project, do: [app: :ep_mix_user, version: "0.1.0", deps: [{:erlang_python, path: #{inspect(@repo)}, manager: :rebar3}]]
      def application, do: [extra_applications: [:logger]]
    end
    """)

    File.write!(Path.join(dir, "lib/ep_mix_user.ex"), """
    defmodule EpMixUser do
      def hypot(a, b), do: :py.call(:math, :hypot, [a, b])
    end
    """)

    rebar3 = System.find_executable("rebar3")
    env = [{"MIX_REBAR3", rebar3}, {"MIX_ENV", "dev"}]

    try do
      {out, status} =
        System.cmd("mix", ["run", "-e", "IO.inspect(EpMixUser.hypot(3, 4))"],
          cd: dir, env: env, stderr_to_stdout: true)

      assert status == 0, out
      assert out =~ "{:ok, 5.0}"
    after
      File.rm_rf!(dir)
    end
  end
end

defmodule ErlangPython.ElixirDemoTest do
  # examples/elixir_demo.exs, which make demo shows, runs as printed.
  use ExUnit.Case, async: false

  @repo Path.expand("../..", __DIR__)

  test "the Elixir demo runs" do
    ebin = Path.join(@repo, "_build/default/lib/erlang_python/ebin")
    {out, status} = System.cmd("elixir", ["-pa", ebin, Path.join(@repo, "examples/elixir_demo.exs")], stderr_to_stdout: true)
    assert status == 0, out
    assert out =~ ~s({:ok, "hello-elixir-world"})
    assert out =~ ~s(["ada", "grace", "barbara"])
  end
end
