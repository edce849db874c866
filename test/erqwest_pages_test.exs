defmodule Erqwest.PagesTest do
  use ExUnit.Case, async: true

  alias Erqwest.{Error, Response}
  alias Erqwest.Test.Server

  setup do
    server = Server.start(:erqwest_pages_server.handler(self()))
    %{client: Erqwest.make_client(proxy: :no_proxy), server: server}
  end

  defp items(%Response{body: ""}), do: []

  defp items(%Response{body: body}),
    do: body |> String.split(",") |> Enum.map(&String.to_integer/1)

  defp paths(server), do: for(%{path: p} <- Server.requests(server), do: p)

  test "walks a Link listing page by page, in order", %{client: c, server: s} do
    pages = Erqwest.paginate(c, Server.url(s, "/link")) |> Enum.to_list()
    assert [%Response{status: 200} | _] = pages
    assert Enum.flat_map(pages, &items/1) == Enum.to_list(1..10)
    assert paths(s) == ["/link", "/link?page=2", "/link?page=3", "/link?page=4"]
  end

  test "request options carry over to every page", %{client: c, server: s} do
    stream = Erqwest.paginate(c, url: Server.url(s, "/multi"), headers: [{"x-token", "t"}])
    assert stream |> Enum.flat_map(&items/1) == Enum.to_list(1..10)
    assert length(Server.requests(s)) == 4
    for %{headers: headers} <- Server.requests(s), do: assert({"x-token", "t"} in headers)
  end

  test "is lazy: nothing is sent before the first element", %{client: c, server: s} do
    stream = Erqwest.paginate(c, Server.url(s, "/link"))
    Process.sleep(100)
    assert Server.requests(s) == []
    assert [%Response{}] = Enum.take(stream, 1)
    Process.sleep(200)
    # The first page, and at most the prefetched second one.
    assert length(Server.requests(s)) in 1..2
  end

  test "without prefetch, take asks for exactly the pages it needs", %{client: c, server: s} do
    stream = Erqwest.paginate(c, Server.url(s, "/link"), prefetch: false)
    assert stream |> Stream.flat_map(&items/1) |> Enum.take(4) == [1, 2, 3, 4]
    Process.sleep(200)
    assert paths(s) == ["/link", "/link?page=2"]
  end

  test "a halted stream cancels its prefetched request", %{client: c, server: s} do
    taken =
      Erqwest.paginate(c, Server.url(s, "/hold"))
      |> Stream.each(fn _page ->
        # Stop only once the server holds the request for page 2.
        assert_receive {:held, _}, 5_000
      end)
      |> Enum.take(1)

    assert [%Response{status: 200}] = taken
    assert_receive {:dropped, _}, 5_000
    assert paths(s) == ["/hold", "/hold?page=2"]
    refute_receive {:erqwest_response, _, _, _}, 100
  end

  test "a failing page raises Erqwest.Error after the pages before it", %{client: c, server: s} do
    test = self()

    stream =
      Erqwest.paginate(c, Server.url(s, "/fail")) |> Stream.each(&send(test, {:page, items(&1)}))

    error = assert_raise Error, fn -> Enum.to_list(stream) end

    assert %Error{code: :http_status, reason: "page 3: HTTP status 500", details: %{status: 500}} =
             error

    assert %{response: %{status: 500}} = error.details
    assert_received {:page, [1, 2, 3]}
    assert_received {:page, [4, 5, 6]}
  end

  test "a loop raises a pagination error", %{client: c, server: s} do
    assert_raise Error, ~r/^pagination: the next URL was requested already/, fn ->
      c |> Erqwest.paginate(Server.url(s, "/loop?page=1")) |> Enum.to_list()
    end

    assert length(Server.requests(s)) == 2
  end

  test "a function strategy sees Response structs", %{client: c, server: s} do
    next = fn %Response{} = resp ->
      case Response.get_header(resp, "x-next-page") do
        [n] -> {:url, "/fun?page=" <> n}
        [] -> :done
      end
    end

    assert c |> Erqwest.paginate(Server.url(s, "/fun"), next: next) |> Enum.flat_map(&items/1) ==
             Enum.to_list(1..10)
  end

  test "max_pages and a per-page timeout", %{client: c, server: s} do
    assert c |> Erqwest.paginate(Server.url(s, "/link"), max_pages: 2) |> Enum.count() == 2

    assert_raise Error, ~r/^timeout/, fn ->
      c |> Erqwest.paginate(Server.url(s, "/stall"), timeout: 300) |> Enum.to_list()
    end
  end

  test "options are checked when the stream is made", %{client: c} do
    assert_raise ArgumentError, ~r/unknown pagination option :page_size/, fn ->
      Erqwest.paginate(c, "http://127.0.0.1:1/", page_size: 3)
    end

    assert_raise ArgumentError, ~r/JSON Pointer/, fn ->
      Erqwest.paginate(c, "http://127.0.0.1:1/", next: {:json, "links.next"})
    end

    assert_raise ArgumentError, ~r/invalid value for pagination option :max_pages/, fn ->
      Erqwest.paginate(c, "http://127.0.0.1:1/", max_pages: 0)
    end

    assert_raise ArgumentError, ~r/missing required request option :url/, fn ->
      Erqwest.paginate(c, method: :get)
    end
  end

  describe "JSON strategies" do
    test "JSON:API: items at /data, next at /links/next", %{client: c, server: s} do
      stream =
        Erqwest.paginate(c, Server.url(s, "/jsonapi"),
          next: {:json, "/links/next"},
          items: "/data"
        )

      assert Enum.to_list(stream) == Enum.to_list(1..10)
      assert length(Server.requests(s)) == 4
    end

    test "take asks for the pages it needs plus the prefetched one", %{client: c, server: s} do
      stream =
        Erqwest.paginate(c, Server.url(s, "/odata"),
          next: {:json, "/@odata.nextLink"},
          items: "/value"
        )

      assert Enum.take(stream, 4) == [1, 2, 3, 4]
      Process.sleep(200)
      assert length(Server.requests(s)) in 2..3
    end

    test "cursor and page strategies", %{client: c, server: s} do
      cursor = {:cursor, "cursor", "/response_metadata/next_cursor"}

      assert c
             |> Erqwest.paginate(Server.url(s, "/cursor"), next: cursor, items: "/items")
             |> Enum.to_list() ==
               Enum.to_list(1..10)

      assert c
             |> Erqwest.paginate(Server.url(s, "/paged"), next: {:page, "p", 1}, items: "/value")
             |> Enum.to_list() ==
               Enum.to_list(1..10)
    end

    test "pages come back with decoded bodies", %{client: c, server: s} do
      [first | _] =
        c
        |> Erqwest.paginate(Server.url(s, "/hal"), next: {:json, "/_links/next/href"})
        |> Enum.to_list()

      assert %Response{body: %{"_embedded" => %{"items" => [1, 2, 3]}}} = first
    end
  end
end
