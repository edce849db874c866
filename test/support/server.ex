defmodule Erqwest.Test.Server do
  @moduledoc """
  Test helpers around `:erqwest_test_server` (test/erqwest_test_server.erl,
  compiled into memory by test_helper.exs), plus the socket-level pieces
  that streaming tests need: draining a chunked upload without keeping it,
  and sending an endless chunked response until the client goes away.
  """

  import ExUnit.Callbacks, only: [on_exit: 1]

  # The Erlang server is loaded at run time, so calls go through apply/3.
  @mod :erqwest_test_server

  @doc "Starts a server for the current test; stopped when the test exits."
  def start(handler, opts \\ %{}) do
    {:ok, server} = call(:start, [handler, opts])
    on_exit(fn -> if Process.alive?(server), do: call(:stop, [server]) end)
    server
  end

  def url(server, path \\ "/"), do: call(:url, [server, path])
  def port(server), do: call(:port, [server])
  def requests(server), do: call(:requests, [server])
  def connections(server), do: call(:connections, [server])
  def wait_closed(server, n), do: call(:wait_closed, [server, n])

  @doc "A handler answering every request with `status` and `body`."
  def reply(status \\ 200, body \\ "ok", headers \\ []) do
    fn _req -> {status, headers, body} end
  end

  @doc """
  A custom handler (use with `read_body: false`) that reads a chunked
  request body off the socket, keeping only its size and CRC32, then
  answers `200` with `"<size> <crc>"` and sends `{:drained, size, crc,
  complete?}` to `test`.
  """
  def drain_handler(test) do
    fn _req ->
      {:custom,
       fn sock, req ->
         {size, crc, complete?} = drain_chunked(sock, Map.get(req, :rest, ""))
         send(test, {:drained, size, crc, complete?})

         if complete? do
           body = "#{size} #{crc}"

           :gen_tcp.send(
             sock,
             "HTTP/1.1 200 OK\r\ncontent-length: #{byte_size(body)}\r\n\r\n#{body}"
           )
         end

         :close
       end}
    end
  end

  @doc """
  A custom handler that streams chunks of `chunk` (chunked encoding) until
  a send fails, then sends `{:client_gone, chunks_sent}` to `test`.
  """
  def endless_handler(test, chunk \\ :binary.copy("x", 16_384)) do
    fn _req ->
      {:custom,
       fn sock, _req ->
         :ok = :gen_tcp.send(sock, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
         frame = [Integer.to_string(byte_size(chunk), 16), "\r\n", chunk, "\r\n"]
         sent = stream_until_closed(sock, frame, 0)
         send(test, {:client_gone, sent})
         :close
       end}
    end
  end

  defp stream_until_closed(sock, frame, n) do
    case :gen_tcp.send(sock, frame) do
      :ok -> stream_until_closed(sock, frame, n + 1)
      {:error, _} -> n
    end
  end

  @doc """
  Reads a chunked body from `sock` (after `buf`, already read), counting
  payload bytes; returns `{size, crc32, complete?}`.
  """
  def drain_chunked(sock, buf), do: chunk_size_line(sock, buf, 0, 0)

  defp chunk_size_line(sock, buf, size, crc) do
    case :binary.split(buf, "\r\n") do
      [line, rest] ->
        [hex | _] = String.split(line, ";")

        case String.to_integer(hex, 16) do
          0 -> trailer(sock, rest, size, crc)
          n -> chunk_data(sock, rest, n, size, crc)
        end

      [_] ->
        more(sock, buf, &chunk_size_line(sock, &1, size, crc), {size, crc, false})
    end
  end

  defp chunk_data(sock, buf, n, size, crc) when byte_size(buf) >= n + 2 do
    <<data::binary-size(n), "\r\n", rest::binary>> = buf
    chunk_size_line(sock, rest, size + n, :erlang.crc32(crc, data))
  end

  defp chunk_data(sock, buf, n, size, crc) when byte_size(buf) > n do
    # The data is here, only the CRLF is missing.
    more(sock, buf, &chunk_data(sock, &1, n, size, crc), {size, crc, false})
  end

  defp chunk_data(sock, buf, n, size, crc) do
    # Consume the partial data now so that big chunks are not buffered.
    crc = :erlang.crc32(crc, buf)

    more(
      sock,
      "",
      &chunk_data(sock, &1, n - byte_size(buf), size + byte_size(buf), crc),
      {size + byte_size(buf), crc, false}
    )
  end

  defp trailer(sock, buf, size, crc) do
    if String.starts_with?(buf, "\r\n") or String.contains?(buf, "\r\n\r\n"),
      do: {size, crc, true},
      else: more(sock, buf, &trailer(sock, &1, size, crc), {size, crc, false})
  end

  defp more(sock, buf, k, cut_off) do
    case :gen_tcp.recv(sock, 0, 30_000) do
      {:ok, data} -> k.(buf <> data)
      {:error, _} -> cut_off
    end
  end

  @doc "A port on 127.0.0.1 where nothing listens."
  def closed_port do
    {:ok, l} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(l)
    :gen_tcp.close(l)
    port
  end

  @doc """
  Registers, for the current test, a client that the runtime engine
  (reqwest) always serves: a `resolve` entry for a name nobody uses keeps
  it off the scheduler engine. Returns its name.
  """
  def runtime_client(prefix, opts) do
    name = :"#{prefix}_#{System.unique_integer([:positive])}"
    resolve = [resolve: [{"unused.invalid", {{127, 0, 0, 1}, 1}}]]
    :ok = Erqwest.start_client(name, resolve ++ opts)
    on_exit(fn -> Erqwest.stop_client(name) end)
    name
  end

  @doc "Whether a raw request used chunked transfer encoding."
  def chunked?(req), do: {"transfer-encoding", "chunked"} in req.headers

  defp call(fun, args), do: apply(@mod, fun, args)
end
