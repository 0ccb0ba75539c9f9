# `make demo` runs this too: erlang_python from Elixir.
#
#     elixir -pa _build/default/lib/erlang_python/ebin examples/elixir_demo.exs
{:ok, _} = Application.ensure_all_started(:erlang_python)

show = fn label, value -> IO.puts(String.pad_trailing(label, 55) <> " " <> inspect(value)) end

show.(":py.call(:math, :sqrt, [16])", :py.call(:math, :sqrt, [16]))
show.(":py.eval(\"x + y\", %{x: 1, y: 2})", :py.eval("x + y", %{x: 1, y: 2}))
show.(":py.eval(\"v is None\", %{v: nil})", :py.eval("v is None", %{v: nil}))

# Each Task runs in a Python namespace of its own.
ctx = :py.context(1)
counts =
  for name <- ["ada", "grace", "barbara"] do
    Task.async(fn ->
      :ok = :py.exec(ctx, "me = '#{name}'")
      {:ok, me} = :py.eval(ctx, "me")
      me
    end)
  end
  |> Enum.map(&Task.await/1)

show.("three Tasks, three namespaces", counts)

# Python calling an Elixir function.
:ok = :py.register_function(:slugify, fn [s] -> s |> String.downcase() |> String.replace(" ", "-") end)
show.("Python calls an Elixir fn", :py.eval("__import__('erlang').call('slugify', 'Hello Elixir World')"))

# Coroutines on the asyncio event loop.
:ok = :py.exec("import asyncio\nasync def double(x):\n    await asyncio.sleep(0.01)\n    return 2 * x\n")
show.(":py_event_loop.run(:__main__, :double, [21])", :py_event_loop.run(:__main__, :double, [21]))
