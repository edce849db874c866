# Read by iex started in this directory (`make shell` runs `iex -S mix`):
# registers a client as :default, the one the examples in the docs use.
if Code.ensure_loaded?(Erqwest) do
  {:ok, _} = Application.ensure_all_started(:erqwest)
  :ok = Erqwest.start_client(:default)

  IO.puts("""
  erqwest #{Application.spec(:erqwest, :vsn)}: a client is registered as :default. Try
    Erqwest.get!(:default, "http://example.com/")
    Erqwest.get!("http://example.com/")    # the application's default client
    h Erqwest.get
  """)
end
