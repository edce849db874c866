defmodule Erqwest.StreamTest do
  use ExUnit.Case, async: true

  alias Erqwest.{Error, Response, Upload}
  alias Erqwest.Test.Server

  setup do
    %{client: Erqwest.make_client(proxy: :no_proxy)}
  end

  describe "stream/3 (response bodies)" do
    test "returns status and headers now, and the body as a lazy stream of chunks", %{client: c} do
      parts = ["one ", "two ", "three"]

      s =
        Server.start(fn _ ->
          {200, [{"transfer-encoding", "chunked"}, {"x-h", "v"}],
           :erqwest_test_server.chunked(parts)}
        end)

      assert {:ok, %Response{status: 200, body: body} = resp} = Erqwest.stream(c, Server.url(s))
      assert Response.get_header(resp, "x-h") == ["v"]
      refute is_binary(body)
      assert Enum.join(body) == "one two three"
    end

    test ":chunk_size batches the body into chunks of at least that size", %{client: c} do
      data = :crypto.strong_rand_bytes(3_000_000)
      s = Server.start(Server.reply(200, data))

      chunks = Erqwest.stream!(c, Server.url(s), chunk_size: 1_000_000).body |> Enum.to_list()
      assert IO.iodata_to_binary(chunks) == data
      {full, [_last]} = Enum.split(chunks, -1)
      assert Enum.all?(full, &(byte_size(&1) >= 1_000_000))
    end

    test ":chunk_period emits what arrived without waiting for :chunk_size", %{client: c} do
      test = self()

      s =
        Server.start(fn _ ->
          {:custom,
           fn sock, _ ->
             :gen_tcp.send(sock, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
             :gen_tcp.send(sock, :erqwest_test_server.chunked(["first"]) |> Enum.take(1))
             send(test, {:conn, self()})
             # Without the period the client would wait for 1 MB; do not hang
             # the test if it does, let the assertion below fail instead.
             receive do
               :go -> :ok
             after
               5_000 -> :ok
             end

             :gen_tcp.send(sock, :erqwest_test_server.chunked(["second"]))
             :keep
           end}
        end)

      resp = Erqwest.stream!(c, Server.url(s), chunk_size: 1_000_000, chunk_period: 20)
      assert_receive {:conn, conn}

      chunks =
        Enum.map(resp.body, fn chunk ->
          send(conn, :go)
          chunk
        end)

      assert chunks == ["first", "second"]
    end

    test "halting early cancels the request: the server sees the connection close",
         %{client: c} do
      s = Server.start(Server.endless_handler(self()))
      %Response{status: 200, body: body} = Erqwest.stream!(c, Server.url(s), chunk_size: 1)

      assert [a, b, d] = Enum.take(body, 3)
      assert byte_size(a) > 0 and byte_size(b) > 0 and byte_size(d) > 0
      assert_receive {:client_gone, sent}, 5_000
      assert sent > 0
      assert Server.wait_closed(s, 0) == :ok
      # cancel consumed the request's last message.
      refute_received {:erqwest_response, _, _, _}
      refute_received {:erqwest_response, _, _}
    end

    test "a body cut off raises Erqwest.Error in the consumer", %{client: c} do
      s =
        Server.start(fn _ ->
          {:raw_close, "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort"}
        end)

      assert {:ok, %Response{status: 200, body: body}} = Erqwest.stream(c, Server.url(s))
      error = assert_raise Error, fn -> Enum.to_list(body) end
      assert error.code == :body
    end

    test "a failed request is an error before any body", %{client: c} do
      url = "http://127.0.0.1:#{Server.closed_port()}/"
      assert {:error, %Error{code: :connect}} = Erqwest.stream(c, url)
      assert_raise Error, ~r/^connect: /, fn -> Erqwest.stream!(c, url) end
    end

    test "a streamed body can be enumerated once", %{client: c} do
      s = Server.start(Server.reply(200, "once"))
      body = Erqwest.stream!(c, Server.url(s)).body
      assert Enum.to_list(body) == ["once"]
      assert_raise ArgumentError, ~r/read already/, fn -> Enum.to_list(body) end
    end

    test "an empty body is an empty stream", %{client: c} do
      s = Server.start(Server.reply(204, ""))
      assert %Response{status: 204, body: body} = Erqwest.stream!(c, Server.url(s))
      assert Enum.to_list(body) == []
    end

    test "takes :method and request options; request/2 streams with response_body: :stream",
         %{client: c} do
      s = Server.start(fn req -> {200, [], ["got ", req.method, " ", req.body]} end)

      resp = Erqwest.stream!(c, Server.url(s), method: :post, body: "data")
      assert Enum.join(resp.body) == "got POST data"

      {:ok, resp} = Erqwest.request(c, url: Server.url(s), response_body: :stream)
      assert Enum.join(resp.body) == "got GET "

      assert_raise ArgumentError, ~r/unknown request option :response_body/, fn ->
        Erqwest.stream(c, Server.url(s), response_body: :complete)
      end
    end
  end

  describe "Enumerable request bodies" do
    test "are streamed chunk by chunk with chunked encoding", %{client: c} do
      s = Server.start(fn req -> {200, [], "got #{byte_size(req.body)}"} end)
      chunks = Stream.map(1..50, fn i -> String.duplicate(<<?a + rem(i, 26)>>, i * 100) end)

      assert {:ok, %Response{status: 200, body: body}} =
               Erqwest.put(c, Server.url(s), body: chunks)

      expected = Enum.join(chunks)
      assert body == "got #{byte_size(expected)}"
      assert [req] = Server.requests(s)
      assert Server.chunked?(req)
      assert req.complete
      assert req.body == expected
    end

    test "File.stream!/3 uploads a file", %{client: c} do
      dir = Erqwest.Test.Tmp.dir!()
      path = Path.join(dir, "upload.bin")
      data = :crypto.strong_rand_bytes(300_000)
      File.write!(path, data)
      s = Server.start(Server.reply())

      assert %Response{status: 200} =
               Erqwest.post!(c, Server.url(s), body: File.stream!(path, [], 65_536))

      assert [%{body: ^data, complete: true}] = Server.requests(s)
    end

    @tag timeout: 120_000
    test "100 MB from a file upload in bounded memory", %{client: c} do
      dir = Erqwest.Test.Tmp.dir!()
      size = 100 * 1024 * 1024
      path = Path.join(dir, "big.bin")
      block = :crypto.strong_rand_bytes(1024 * 1024)
      File.write!(path, List.duplicate(block, 100))
      expected_crc = Enum.reduce(1..100, 0, fn _, crc -> :erlang.crc32(crc, block) end)

      s = Server.start(Server.drain_handler(self()), %{read_body: false})
      :erlang.garbage_collect()
      baseline = :erlang.memory(:total)
      sampler = start_sampler()

      assert {:ok, %Response{status: 200, body: body}} =
               Erqwest.post(c, Server.url(s), body: File.stream!(path, [], 65_536))

      peak = stop_sampler(sampler)
      assert body == "#{size} #{expected_crc}"
      assert_receive {:drained, ^size, ^expected_crc, true}
      growth = peak - baseline
      IO.puts("\n100 MB upload: VM memory grew by at most #{div(growth, 1024)} KB")
      assert growth < 64 * 1024 * 1024
    end

    test "stop when the server answers early", %{client: c} do
      s = early_answer_server("HTTP/1.1 413 Too Large\r\ncontent-length: 0\r\n\r\n")

      endless = Stream.repeatedly(fn -> :binary.copy("y", 65_536) end)
      assert {:ok, %Response{status: 413}} = Erqwest.post(c, Server.url(s), body: endless)
    end

    test "an enumerable that raises aborts the request", %{client: c} do
      s = Server.start(Server.drain_handler(self()), %{read_body: false})

      failing =
        Stream.map(1..10, fn
          5 -> raise "boom"
          _ -> "chunk"
        end)

      assert_raise RuntimeError, "boom", fn -> Erqwest.post(c, Server.url(s), body: failing) end
      assert_receive {:drained, _, _, false}, 5_000
    end

    test "a chunk that is not iodata raises ArgumentError and aborts", %{client: c} do
      s = Server.start(Server.drain_handler(self()), %{read_body: false})

      assert_raise ArgumentError, ~r/must be iodata, got: :oops/, fn ->
        Erqwest.post(c, Server.url(s), body: Stream.concat(["ok"], [:oops]))
      end

      assert_raise ArgumentError, ~r/not iodata/, fn ->
        Erqwest.post(c, Server.url(s), body: Stream.concat(["ok"], [[1000]]))
      end

      assert_receive {:drained, _, _, false}, 5_000
      assert_receive {:drained, _, _, false}, 5_000
    end
  end

  describe "Erqwest.Upload" do
    test "body: :stream returns an upload to write to and finish", %{client: c} do
      s = Server.start(fn req -> {200, [], "got " <> req.body} end)
      assert {:ok, %Upload{} = up} = Erqwest.put(c, Server.url(s), body: :stream)
      assert Upload.write(up, "hello ") == :ok
      assert Upload.write(up, [~c"wor", "ld"]) == :ok
      assert {:ok, %Response{status: 200, body: "got hello world"}} = Upload.finish(up)
      assert [%{method: "PUT", complete: true} = req] = Server.requests(s)
      assert Server.chunked?(req)
    end

    test "is a Collectable", %{client: c} do
      s = Server.start(fn req -> {200, [], req.body} end)
      up = Erqwest.post!(c, Server.url(s), body: :stream)
      up = Enum.into(Stream.map(1..3, &"part#{&1};"), up)
      assert %Response{body: "part1;part2;part3;"} = Upload.finish!(up)
    end

    test "collecting after an early answer drops the rest; finish returns the answer",
         %{client: c} do
      s = early_answer_server("HTTP/1.1 413 Too Large\r\ncontent-length: 0\r\n\r\n")

      up = Erqwest.post!(c, Server.url(s), body: :stream)
      # Until the answer shows, chunks keep going; a few MB is plenty.
      up =
        Enum.into(
          Stream.repeatedly(fn -> :binary.copy("z", 65_536) end) |> Stream.take(2_000),
          up
        )

      assert {:ok, %Response{status: 413}} = Upload.finish(up)
      assert Upload.write(up, "more") == {:reply, elem(Upload.finish(up), 1)}
    end

    test "write/2 returns the early answer once; then the request is over", %{client: c} do
      s = early_answer_server("HTTP/1.1 401 No\r\ncontent-length: 4\r\n\r\nwho?")

      up = Erqwest.post!(c, Server.url(s), body: :stream)
      chunk = :binary.copy("w", 65_536)

      reply =
        Stream.repeatedly(fn -> Upload.write(up, chunk) end)
        |> Enum.find(&(&1 != :ok))

      assert {:reply, %Response{status: 401, body: "who?"}} = reply
      assert_raise ArgumentError, ~r/request is over/, fn -> Upload.write(up, chunk) end
      assert_raise ArgumentError, ~r/request is over/, fn -> Upload.finish(up) end
    end

    test "cancel aborts: the server never sees a complete body", %{client: c} do
      s = Server.start(Server.drain_handler(self()), %{read_body: false})
      up = Erqwest.post!(c, Server.url(s), body: :stream)
      :ok = Upload.write(up, "partial")
      assert Upload.cancel(up) == :ok
      assert_receive {:drained, 7, _, false}, 5_000
      refute_received {:erqwest_response, _, _, _}
    end

    test "with response_body: :stream, finish returns a streamed body", %{client: c} do
      s = Server.start(fn req -> {200, [], String.duplicate(req.body, 3)} end)
      up = Erqwest.post!(c, Server.url(s), body: :stream, response_body: :stream)
      :ok = Upload.write(up, "ab")
      assert %Response{body: body} = Upload.finish!(up)
      assert Enum.join(body) == "ababab"
    end

    test "write/2 and finish/1 after finish/1 raise at once; the streamed body still reads",
         %{client: c} do
      # Issue 28, case 3: the write waited for ever. In a task, so that a
      # regression fails here instead of hanging the run.
      s = Server.start(fn _ -> {200, [{"connection", "close"}], "answer"} end)

      task =
        Task.async(fn ->
          up = Erqwest.post!(c, Server.url(s), body: :stream, response_body: :stream)
          :ok = Upload.write(up, "Data")
          %Response{status: 200, body: body} = Upload.finish!(up)
          assert_raise ArgumentError, ~r/request is over/, fn -> Upload.write(up, "fail") end
          assert_raise ArgumentError, ~r/request is over/, fn -> Upload.finish(up) end
          Enum.join(body)
        end)

      assert (Task.yield(task, 10_000) || Task.shutdown(task)) == {:ok, "answer"}
    end

    test "finish! raises Erqwest.Error", %{client: c} do
      s = Server.start(fn _ -> {:custom, fn _sock, _req -> :close end} end, %{read_body: false})
      up = Erqwest.post!(c, Server.url(s), body: :stream)
      assert_raise Error, fn -> Upload.finish!(up) end
    end
  end

  # Answers with `response` as soon as the request head arrives, then
  # reads (and drops) whatever comes, so that the answer is not lost to a
  # reset.
  defp early_answer_server(response) do
    Server.start(
      fn _ ->
        {:custom,
         fn sock, _ ->
           :gen_tcp.send(sock, response)
           drain(sock)
           :close
         end}
      end,
      %{read_body: false}
    )
  end

  defp drain(sock) do
    case :gen_tcp.recv(sock, 0, 5_000) do
      {:ok, _} -> drain(sock)
      {:error, _} -> :ok
    end
  end

  # Samples the VM's total memory until stopped; returns the peak.
  defp start_sampler do
    spawn_link(fn -> sample(:erlang.memory(:total)) end)
  end

  defp sample(peak) do
    receive do
      {:stop, from} -> send(from, {:peak, peak})
    after
      5 -> sample(max(peak, :erlang.memory(:total)))
    end
  end

  defp stop_sampler(pid) do
    send(pid, {:stop, self()})
    assert_receive {:peak, peak}
    peak
  end
end
