defmodule Erqwest.DefaultTest do
  # The default client from Elixir: calls without a client, options from
  # `config :erqwest, default_client: [...]`, and the client made again
  # after the application restarts. Not async: it restarts :erqwest.
  use ExUnit.Case, async: false

  alias Erqwest.{Error, Response}
  alias Erqwest.Test.Server

  setup do
    on_exit(fn ->
      Application.delete_env(:erqwest, :default_client)
      Application.stop(:erqwest)
      {:ok, _} = Application.ensure_all_started(:erqwest)
    end)

    s =
      Server.start(fn req ->
        {200, [{"content-type", "application/json"}],
         ~s({"method":"#{req.method}","path":"#{req.path}","body":#{inspect(req.body)}})}
      end)

    %{server: s}
  end

  defp restart_with(opts) do
    :ok = Application.stop(:erqwest)
    Application.put_env(:erqwest, :default_client, opts)
    {:ok, _} = Application.ensure_all_started(:erqwest)
  end

  defp last_headers(s), do: List.last(Server.requests(s)).headers

  test "get!/1, post!/2 and the other calls without a client", %{server: s} do
    url = Server.url(s, "/a")

    assert %Response{status: 200, body: %{"method" => "GET", "path" => "/a"}} = Erqwest.get!(url)

    assert %Response{body: %{"method" => "POST", "body" => ~s({"n":1})}} =
             Erqwest.post!(url, json: %{n: 1})

    assert {"content-type", "application/json"} in last_headers(s)
    assert {:ok, %Response{body: %{"method" => "PUT"}}} = Erqwest.put(url, body: "x")
    assert %Response{body: %{"method" => "PATCH"}} = Erqwest.patch!(url, body: "x")
    assert %Response{body: %{"method" => "DELETE"}} = Erqwest.delete!(url)
    assert %Response{body: %{"method" => "OPTIONS"}} = Erqwest.options!(url)
    assert %Response{status: 200, body: ""} = Erqwest.head!(url)
    assert {:ok, %Response{body: %{"method" => "GET"}}} = Erqwest.get(URI.parse(url))
    assert %Response{body: %{"path" => "/a?q=1"}} = Erqwest.get!(url, params: [q: 1])
    assert %Response{body: %{"method" => "GET"}} = Erqwest.request!(url: url)

    assert {:ok, %Response{body: %{"method" => "DELETE"}}} =
             Erqwest.request(method: :delete, url: url)

    # The caller can still ask for the raw body.
    assert %Response{body: "{" <> _} = Erqwest.get!(url, decode_body: false)

    assert Enum.map(Server.requests(s), & &1.method) ==
             ~w(GET POST PUT PATCH DELETE OPTIONS HEAD GET GET GET DELETE GET)
  end

  test "a failure raises Erqwest.Error from the bang variants" do
    url = "http://127.0.0.1:#{Server.closed_port()}/"
    assert {:error, %Error{code: :connect}} = Erqwest.get(url)
    assert_raise Error, fn -> Erqwest.get!(url) end
  end

  test "a keyword list in the app env is read as make_client/1 options", %{server: s} do
    restart_with(user_agent: "ex-env/1", default_headers: [{"x-env", "kw"}])
    opts = :erqwest_default.options()
    # Elixir's client defaults came with it (retry: true is Req's
    # :safe_transient).
    assert %{user_agent: "ex-env/1", retry: %{methods: [:get, :head]}, decode: :auto} = opts

    Erqwest.get!(Server.url(s, "/env"))
    assert {"user-agent", "ex-env/1"} in last_headers(s)
    assert {"x-env", "kw"} in last_headers(s)
  end

  test "bad options in the app env keep :erqwest from starting" do
    :ok = Application.stop(:erqwest)
    Application.put_env(:erqwest, :default_client, timeout: :soon)

    assert {:error, {:erqwest, {{:shutdown, {:failed_to_start_child, :erqwest_default, _}}, _}}} =
             Application.ensure_all_started(:erqwest)
  end

  test "made again after the application restarts", %{server: s} do
    before = :erqwest.get_client(:erqwest_default)
    assert Erqwest.get!(Server.url(s, "/1")).status == 200
    :ok = Application.stop(:erqwest)
    {:ok, _} = Application.ensure_all_started(:erqwest)
    refute :erqwest.get_client(:erqwest_default) == before
    assert %Response{body: %{"path" => "/2"}} = Erqwest.get!(Server.url(s, "/2"))
  end

  test "client-first calls keep their meaning", %{server: s} do
    url = Server.url(s, "/c")
    client = Erqwest.make_client(default_headers: [{"x-which", "mine"}])
    assert {:ok, %Response{status: 200}} = Erqwest.get(client, url)
    assert {"x-which", "mine"} in last_headers(s)
    :ok = Erqwest.start_client(:mine_default_test, default_headers: [{"x-which", "named"}])
    assert %Response{status: 200} = Erqwest.post!(:mine_default_test, url, body: "b")
    assert {"x-which", "named"} in last_headers(s)
    :ok = Erqwest.stop_client(:mine_default_test)
  end
end
