# The wire-level test server is Erlang (shared with the Common Test
# suites) and mix does not compile test/*.erl, so load it into memory, with
# the paginated API erqwest_pages_server.
for file <- ["erqwest_test_server.erl", "erqwest_pages_server.erl"] do
  {:ok, mod, bin} = :compile.file(~c"#{__DIR__}/#{file}", [:binary, :debug_info, :return_errors])

  {:module, _} = :code.load_binary(mod, String.to_charlist(file), bin)
end

{:ok, _} = Application.ensure_all_started(:erqwest)
ExUnit.start()
