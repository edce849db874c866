# The wire-level test server is Erlang (shared with the Common Test
# suites) and mix does not compile test/*.erl, so load it into memory.
{:ok, mod, bin} =
  :compile.file(~c"#{__DIR__}/erqwest_test_server.erl", [:binary, :debug_info, :return_errors])

{:module, _} = :code.load_binary(mod, ~c"erqwest_test_server.erl", bin)

{:ok, _} = Application.ensure_all_started(:erqwest)
ExUnit.start()
