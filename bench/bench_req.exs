# `make bench-req`: Req on erqwest (Erqwest.Req) against Req on its default
# Finch adapter, on the same nginx (bench/bench_nginx.erl), same URL, same
# Req pipeline; only the adapter differs. Run by bench/req, which compiles
# bench_nginx and puts the peers (PEERS_LIB) on the code path.
#
# Rows: GET of a 1.8 KB JSON document, decoded by Req (Jason) on both
# sides, at BENCH_REQ_WORKERS concurrent workers (default "1,50"), each
# for BENCH_REQ_SECONDS (default 5) after a 1 s warm-up. The two
# adapters alternate, BENCH_REQ_ROUNDS times (default 3), and the best
# round of each is kept, so that a neighbour's burst on a shared machine
# costs one round, not the row.
defmodule BenchReq do
  def main do
    workers = env_list("BENCH_REQ_WORKERS", "1,50")
    seconds = env_int("BENCH_REQ_SECONDS", 5)
    rounds = env_int("BENCH_REQ_ROUNDS", 3)
    {:ok, _} = Application.ensure_all_started(:req)
    {:ok, _} = Application.ensure_all_started(:erqwest)

    dir = System.get_env("BENCH_WORK") || raise "BENCH_WORK is not set"
    body_temp = Path.join(dir, "body_temp")
    File.mkdir_p!(body_temp)

    srv =
      :bench_nginx.start(%{
        dir: String.to_charlist(Path.join(dir, "nginx")),
        files: [],
        body_temp: String.to_charlist(body_temp)
      })

    try do
      doc = json_document(1_800)
      File.write!(Path.join([dir, "nginx", "www", "doc.json"]), doc)
      url = :bench_nginx.url(srv, :http, "/doc.json")

      # nginx serves it as text/plain here, so a response step decodes it
      # (Jason, as Req's own decode step would) on both sides, as an API
      # client would.
      decode = fn {req, resp} -> {req, %{resp | body: Jason.decode!(resp.body)}} end

      finch =
        Req.new(url: url, retry: false)
        |> Req.Request.append_response_steps(bench_decode: decode)

      erqwest = Erqwest.Req.attach(finch)
      check!(finch, doc)
      check!(erqwest, doc)

      IO.puts(
        "Req 0.5 on erqwest vs on Finch: GET #{byte_size(doc)} B JSON over HTTP/1.1, " <>
          "#{seconds} s per measurement, best of #{rounds} alternating rounds"
      )

      IO.puts(String.pad_trailing("workers", 9) <> "  Req+Finch req/s  Req+erqwest req/s  ratio")

      for n <- workers do
        results =
          for _ <- 1..rounds, {name, req} <- [finch: finch, erqwest: erqwest] do
            {name, rate(req, n, seconds)}
          end

        best = fn name -> results |> Keyword.get_values(name) |> Enum.max() end
        {f, e} = {best.(:finch), best.(:erqwest)}

        IO.puts(
          String.pad_trailing(Integer.to_string(n), 9) <>
            "  " <>
            String.pad_leading(fmt(f), 15) <>
            "  " <>
            String.pad_leading(fmt(e), 17) <>
            "  " <> :erlang.float_to_binary(e / f, decimals: 2) <> "x"
        )
      end
    after
      :bench_nginx.stop(srv)
    end
  end

  # A JSON object of about `bytes` bytes: users with a few fields each.
  defp json_document(bytes) do
    user = fn i ->
      ~s({"id":#{i},"name":"user #{i}","email":"user#{i}@example.com","active":true,"score":#{i * 7 / 3}})
    end

    users = Stream.iterate(1, &(&1 + 1)) |> Stream.map(user)

    {items, _} =
      Enum.reduce_while(users, {[], 20}, fn u, {acc, size} ->
        if size + byte_size(u) + 1 > bytes,
          do: {:halt, {acc, size}},
          else: {:cont, {[u | acc], size + byte_size(u) + 1}}
      end)

    ~s({"users":[) <> Enum.join(Enum.reverse(items), ",") <> ~s(],"n":0})
  end

  defp check!(req, doc) do
    %{status: 200, body: body} = Req.get!(req)
    expected = Jason.decode!(doc)
    ^expected = body
  end

  # Requests per second of `n` workers looping on Req.get!/1 for `seconds`.
  defp rate(req, n, seconds) do
    counter = :counters.new(1, [:write_concurrency])
    parent = self()

    pids =
      for _ <- 1..n do
        spawn_link(fn -> loop(req, counter, parent) end)
      end

    Process.sleep(1_000)
    c0 = :counters.get(counter, 1)
    t0 = System.monotonic_time(:microsecond)
    Process.sleep(seconds * 1_000)
    c1 = :counters.get(counter, 1)
    t1 = System.monotonic_time(:microsecond)
    for pid <- pids, do: send(pid, :stop)
    for _ <- pids, do: receive(do: (:stopped -> :ok))
    (c1 - c0) * 1_000_000 / (t1 - t0)
  end

  defp loop(req, counter, parent) do
    receive do
      :stop -> send(parent, :stopped)
    after
      0 ->
        %{status: 200} = Req.get!(req)
        :counters.add(counter, 1, 1)
        loop(req, counter, parent)
    end
  end

  defp fmt(rate), do: rate |> round() |> Integer.to_string()

  defp env_int(name, default) do
    case System.get_env(name) do
      nil -> default
      v -> String.to_integer(v)
    end
  end

  defp env_list(name, default) do
    (System.get_env(name) || default) |> String.split(",") |> Enum.map(&String.to_integer/1)
  end
end

BenchReq.main()
