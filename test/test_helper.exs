# The wire-level test server is Erlang (shared with the Common Test
# suites) and mix does not compile test/*.erl, so load it into memory, with
# the paginated API erqwest_pages_server.
for file <- ["erqwest_test_server.erl", "erqwest_pages_server.erl"] do
  {:ok, mod, bin} = :compile.file(~c"#{__DIR__}/#{file}", [:binary, :debug_info, :return_errors])

  {:module, _} = :code.load_binary(mod, String.to_charlist(file), bin)
end

{:ok, _} = Application.ensure_all_started(:erqwest)

# The Req and Tesla adapter suites (tag :peers) need the peers that
# scripts/peers.sh builds from ../shared/peers, on the code path through
# PEERS_LIB (see mix.exs); without them they are skipped, said once.
peers? = Enum.all?([Req, Tesla, Jason], &Code.ensure_loaded?/1)

exclude =
  if peers? do
    {:ok, _} = Application.ensure_all_started(:req)
    {:ok, _} = Application.ensure_all_started(:tesla)
    []
  else
    IO.puts(
      "skipping the Req and Tesla adapter tests: Req, Tesla or Jason is not loadable " <>
        "(run with PEERS_LIB=$(bash scripts/peers.sh))"
    )

    [:peers]
  end

ExUnit.start(exclude: exclude)
