# `make bench-req`: Req on erqwest (Erqwest.Req) against Req on its default
# Finch adapter, on the same nginx (bench/bench_nginx.erl), same URL, same
# Req pipeline; only the adapter differs. Run by bench/req, which compiles
# bench_nginx and puts the peers (PEERS_LIB) on the code path.
#
# Rows: GET of a 1.8 KB and of a 157 KB JSON document, and POST of a JSON
# map to nginx's echo, each answer decoded with Jason on both sides, at
# BENCH_REQ_WORKERS concurrent workers (default "1,50"), each
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
      small = json_document(1_800)
      big = json_document(157_000)
      File.write!(Path.join([dir, "nginx", "www", "small.json"]), small)
      File.write!(Path.join([dir, "nginx", "www", "big.json"]), big)
      map = Jason.decode!(small)

      # nginx serves these as text/plain here, so a response step decodes
      # them (Jason, as Req's own decode step would) on both sides, as an
      # API client would.
      decode = fn {req, resp} -> {req, %{resp | body: Jason.decode!(resp.body)}} end

      base =
        Req.new(retry: false)
        |> Req.Request.append_response_steps(bench_decode: decode)

      rows = [
        {"GET #{kb(small)} JSON", fn req -> Req.get!(req, url: url(srv, "/small.json")) end,
         Jason.decode!(small)},
        {"GET #{kb(big)} JSON", fn req -> Req.get!(req, url: url(srv, "/big.json")) end,
         Jason.decode!(big)},
        {"POST #{kb(small)} JSON map (echo)",
         fn req -> Req.post!(req, url: url(srv, "/echo"), json: map) end, map}
      ]

      # BENCH_REQ_ROWS: only the rows whose label contains one of these words.
      rows =
        case System.get_env("BENCH_REQ_ROWS") do
          nil ->
            rows

          words ->
            Enum.filter(rows, fn {l, _, _} -> Enum.any?(String.split(words, ","), &(l =~ &1)) end)
        end

      adapters = [finch: base, erqwest: Erqwest.Req.attach(base)]

      IO.puts(
        "Req 0.5 on erqwest vs on Finch (the same Req pipeline, only the adapter differs), " <>
          "nginx over HTTP/1.1, #{seconds} s per measurement after 1 s of warm-up, " <>
          "best of #{rounds} alternating rounds"
      )

      IO.puts(
        String.pad_trailing("row", 28) <>
          String.pad_leading("workers", 8) <>
          String.pad_leading("Req+Finch req/s", 17) <>
          String.pad_leading("Req+erqwest req/s", 19) <>
          String.pad_leading("ratio", 8) <>
          String.pad_leading("Finch CPU", 12) <>
          String.pad_leading("erqwest CPU", 14) <> String.pad_leading("ratio", 8)
      )

      IO.puts(
        "(CPU: the client VM's CPU time per request in µs, best round; its ratio is Finch's over erqwest's)"
      )

      for {label, call, expected} <- rows, n <- workers do
        for {_, req} <- adapters, do: %{status: 200, body: ^expected} = call.(req)

        results =
          for _ <- 1..rounds, {name, req} <- adapters do
            {name, rate(fn -> %{status: 200} = call.(req) end, n, seconds)}
          end

        best = fn name ->
          results |> Keyword.get_values(name) |> Enum.map(&elem(&1, 0)) |> Enum.max()
        end

        cpu = fn name ->
          results |> Keyword.get_values(name) |> Enum.map(&elem(&1, 1)) |> Enum.min()
        end

        {f, e} = {best.(:finch), best.(:erqwest)}
        {fc, ec} = {cpu.(:finch), cpu.(:erqwest)}

        IO.puts(
          String.pad_trailing(label, 28) <>
            String.pad_leading(Integer.to_string(n), 8) <>
            String.pad_leading(fmt(f), 17) <>
            String.pad_leading(fmt(e), 19) <>
            String.pad_leading(ratio(e, f), 8) <>
            String.pad_leading(fmt(fc), 12) <>
            String.pad_leading(fmt(ec), 14) <>
            String.pad_leading(ratio(fc, ec), 8)
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

  defp url(srv, path), do: :bench_nginx.url(srv, :http, path)
  defp kb(doc), do: "#{Float.round(byte_size(doc) / 1000, 1)} KB"

  # Requests per second of `n` workers looping on `call` for `seconds`,
  # and the VM's CPU time (every thread: schedulers, tokio, Finch's
  # processes) per request in µs over the same window.
  defp rate(call, n, seconds) do
    counter = :counters.new(1, [:write_concurrency])
    parent = self()

    pids =
      for _ <- 1..n do
        spawn_link(fn -> loop(call, counter, parent) end)
      end

    Process.sleep(1_000)
    c0 = :counters.get(counter, 1)
    {cpu0, _} = :erlang.statistics(:runtime)
    t0 = System.monotonic_time(:microsecond)
    Process.sleep(seconds * 1_000)
    c1 = :counters.get(counter, 1)
    {cpu1, _} = :erlang.statistics(:runtime)
    t1 = System.monotonic_time(:microsecond)
    for pid <- pids, do: send(pid, :stop)
    for _ <- pids, do: receive(do: (:stopped -> :ok))
    done = c1 - c0
    {done * 1_000_000 / (t1 - t0), if(done > 0, do: (cpu1 - cpu0) * 1_000 / done, else: 0.0)}
  end

  defp loop(call, counter, parent) do
    receive do
      :stop -> send(parent, :stopped)
    after
      0 ->
        call.()
        :counters.add(counter, 1, 1)
        loop(call, counter, parent)
    end
  end

  defp fmt(rate), do: rate |> round() |> Integer.to_string()

  defp ratio(_, f) when f == 0, do: "-"
  defp ratio(e, f), do: :erlang.float_to_binary(e / f, decimals: 2) <> "x"

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
