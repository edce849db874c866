# `make bench-everyday` (issue 31, "Benchmark"): everyday JSON requests
# through erqwest's Elixir API with a client made with its defaults,
# against Req with its defaults and Finch + Jason by hand. Run by
# bench/everyday, which makes the work directory, builds erqwest
# (MIX_ENV=prod) and finds the peers (PEERS_LIB).
#
# The same file is both halves of the run:
#   - without BENCH_EVERYDAY_CLIENT it is the coordinator: it writes the
#     documents, starts nginx on 127.0.0.1 (JSON files and the echo both
#     answer `content-type: application/json`), consolidates the protocols
#     once for every client VM, and for every row, worker count and round
#     starts one VM per client (order rotating), then prints the table;
#   - with BENCH_EVERYDAY_CLIENT=erqwest|req|finch it is one client VM: it
#     measures one cell and prints one `RESULT` line.
# Each client runs alone in its VM, so no client's schedulers, garbage or
# connections touch another's. Settings: bench/README.md, "Everyday
# requests (issue 31)".
defmodule BenchEveryday do
  # The last two are not run by default (BENCH_EVERYDAY_CLIENTS), to see
  # where erqwest's time goes: its Elixir API with `retry: false`, and
  # its Erlang API on a bare client (`erqwest:get/2`) with Jason in the
  # caller, as the Finch client decodes.
  @clients [
    erqwest: "erqwest",
    req: "Req",
    finch: "Finch+Jason",
    erqwest_noretry: "erqwest retry: false",
    erqwest_bare: "erqwest:get/2 + Jason"
  ]

  # The rows: {key, label}.
  @rows [small: "GET 1.8 KB JSON", post: "POST a JSON map, JSON back", big: "GET 157 KB JSON"]

  def main do
    case System.get_env("BENCH_EVERYDAY_CLIENT") do
      nil -> coordinate()
      client -> BenchEveryday.Client.main(String.to_atom(client))
    end
  end

  ## Coordinator

  defp coordinate do
    dir = System.get_env("BENCH_WORK") || raise "BENCH_WORK is not set (run bench/everyday)"
    seconds = env_int("BENCH_EVERYDAY_SECONDS", 4)
    warmup = env_int("BENCH_EVERYDAY_WARMUP", 1)
    rounds = env_int("BENCH_EVERYDAY_ROUNDS", 3)
    workers = env_list("BENCH_EVERYDAY_WORKERS", "1,50") |> Enum.map(&String.to_integer/1)

    clients =
      env_list("BENCH_EVERYDAY_CLIENTS", "erqwest,req,finch") |> Enum.map(&String.to_atom/1)

    rows = env_list("BENCH_EVERYDAY_ROWS", "small,post,big") |> Enum.map(&String.to_atom/1)
    flags = System.get_env("BENCH_EVERYDAY_ERL_FLAGS", "+sbwt none +sbwtdcpu none +sbwtdio none")
    out = System.get_env("BENCH_OUT", "bench/results")
    paths = code_paths()

    write_documents(dir)
    consolidate(paths, Path.join(dir, "consolidated"))
    load0 = loadavg()
    started = DateTime.utc_now() |> DateTime.truncate(:second)
    nginx = start_nginx(dir)

    head = header(started, seconds, warmup, rounds, flags, load0)
    IO.puts(head)

    cells = for n <- workers, row <- rows, do: {row, n}

    {results, loads} =
      try do
        cells
        |> Enum.with_index()
        |> Enum.map_reduce([load0], fn {{row, n}, i}, loads ->
          runs =
            for r <- 0..(rounds - 1), client <- rotate(clients, i + r) do
              env = %{
                row: row,
                workers: n,
                seconds: seconds,
                warmup: warmup,
                port: nginx.port,
                dir: dir
              }

              res = run_client(client, env, paths, dir, flags, seconds + warmup + 60)

              IO.puts(
                :stderr,
                "  #{label(row)}, #{n} workers, round #{r + 1}, #{client}: " <>
                  "#{fmt(res.rate)} req/s, sched #{fmt1(res.sched)} µs/req, " <>
                  "CPU #{fmt1(res.cpu)} µs/req, verified #{res.verified}, errors #{res.errors}"
              )

              {client, res}
            end

          {{{row, n}, runs}, [loadavg() | loads]}
        end)
      after
        stop_nginx(nginx)
      end

    load1 = loadavg()
    table = table(results, clients)
    extra = detail(results, clients, rounds)
    foot = footer(results, clients, rows, workers, Enum.reverse(loads), load1)
    text = Enum.join([head, table, extra, foot], "\n")
    IO.puts(table <> "\n" <> extra <> "\n" <> foot)

    File.mkdir_p!(out)
    stamp = Calendar.strftime(started, "%Y%m%d-%H%M")
    file = Path.join(out, "everyday-#{stamp}.txt")
    File.write!(file, text)
    IO.puts("written to #{file}")
  end

  defp rotate(list, k) do
    k = rem(k, length(list))
    Enum.drop(list, k) ++ Enum.take(list, k)
  end

  # The client VMs' code path: erqwest's mix build, the peers, and the
  # consolidated protocols (added first by run_client/6).
  defp code_paths do
    peers = System.get_env("PEERS_LIB") || raise "PEERS_LIB is not set"
    erqwest = Path.expand("_build/mix/prod/lib/erqwest/ebin")
    [erqwest | Path.wildcard(Path.join(peers, "*/ebin"))]
  end

  # Protocols consolidated over Elixir, erqwest and the peers, as a
  # release would have them: Jason.Encoder's dispatch is part of what the
  # Req and Finch + Jason clients pay for an encoded body.
  defp consolidate(paths, dest) do
    File.mkdir_p!(dest)
    elixir = [Path.join(:code.lib_dir(:elixir), "ebin")]
    all = Enum.map(elixir ++ paths, &String.to_charlist/1)
    for p <- paths, do: Code.prepend_path(p)

    for protocol <- Protocol.extract_protocols(all) do
      impls = Protocol.extract_impls(protocol, all)
      {:ok, beam} = Protocol.consolidate(protocol, impls)
      File.write!(Path.join(dest, "#{protocol}.beam"), beam)
    end
  end

  defp run_client(client, env, paths, dir, flags, limit) do
    pa = Enum.flat_map([Path.join(dir, "consolidated") | paths], &["-pa", &1])

    vars = [
      {"BENCH_EVERYDAY_CLIENT", Atom.to_string(client)},
      {"BENCH_EVERYDAY_ROW", Atom.to_string(env.row)},
      {"BENCH_EVERYDAY_N", Integer.to_string(env.workers)},
      {"BENCH_EVERYDAY_SECONDS", Integer.to_string(env.seconds)},
      {"BENCH_EVERYDAY_WARMUP", Integer.to_string(env.warmup)},
      {"BENCH_EVERYDAY_PORT", Integer.to_string(env.port)},
      {"BENCH_WORK", env.dir}
    ]

    # `timeout` bounds a client VM that would hang; its result is then an error.
    args = [Integer.to_string(limit), "elixir", "--erl", flags] ++ pa ++ [__ENV__.file]
    {output, status} = System.cmd("timeout", args, env: vars, stderr_to_stdout: true)

    case Regex.run(~r/^RESULT (.*)$/m, output) do
      [_, line] when status == 0 ->
        [rate, sched, dirty, cpu, tokio, verified, errors, ncpu, dcpu, poller, other] =
          line |> String.split() |> Enum.map(&parse_num/1)

        %{
          rate: rate,
          sched: sched,
          dirty: dirty,
          cpu: cpu,
          tokio: tokio,
          verified: verified,
          errors: errors,
          ncpu: ncpu,
          dcpu: dcpu,
          poller: poller,
          other: other
        }

      _ ->
        IO.puts(:stderr, "client #{client} failed (exit #{status}):\n#{output}")

        %{
          rate: 0.0,
          sched: 0.0,
          dirty: 0.0,
          cpu: 0.0,
          tokio: 0.0,
          verified: 0,
          errors: -1,
          ncpu: 0.0,
          dcpu: 0.0,
          poller: 0.0,
          other: 0.0
        }
    end
  end

  defp parse_num(s) do
    case Float.parse(s) do
      {f, ""} -> f
      _ -> raise "bad number #{inspect(s)}"
    end
  end

  ## Documents and nginx

  # Arrays of objects of the kind APIs return. Scores are quarters, exact
  # in binary, so every decoder gives the very same float.
  def document(bytes) do
    item = fn i ->
      ~s({"id":#{i},"name":"user #{i}","email":"user#{i}@example.com",) <>
        ~s("active":#{rem(i, 3) != 0},"score":#{i * 0.25},"tags":["a","b#{rem(i, 7)}"],) <>
        ~s("manager":null})
    end

    Stream.iterate(1, &(&1 + 1))
    |> Stream.map(item)
    |> Enum.reduce_while({[], 2}, fn it, {acc, size} ->
      if size + byte_size(it) + 1 > bytes,
        do: {:halt, {acc, size}},
        else: {:cont, {[it | acc], size + byte_size(it) + 1}}
    end)
    |> elem(0)
    |> Enum.reverse()
    |> then(&("[" <> Enum.join(&1, ",") <> "]"))
  end

  # The map the POST row sends: a small record such as an API takes.
  @post_map ~s({"name":"Ada Lovelace","email":"ada@example.com","active":true,) <>
              ~s("score":12.5,"tags":["admin","ops"],"address":{"city":"London",) <>
              ~s("zip":"NW1","lines":["12 St James's Square"]},"manager":null,"visits":1843})

  defp write_documents(dir) do
    www = Path.join([dir, "nginx", "www"])
    File.mkdir_p!(www)
    File.write!(Path.join(www, "small.json"), document(1_800))
    File.write!(Path.join(www, "big.json"), document(157_000))
    File.write!(Path.join(dir, "post.json"), @post_map)
  end

  defp start_nginx(dir) do
    ndir = Path.join(dir, "nginx")

    for d <- ~w(body_temp proxy_temp fastcgi_temp uwsgi_temp scgi_temp),
        do: File.mkdir_p!(Path.join(ndir, d))

    port = free_port()
    conf = Path.join(ndir, "nginx.conf")
    File.write!(conf, nginx_conf(ndir, port))
    nginx = System.find_executable("nginx") || raise "nginx not found"

    p =
      Port.open({:spawn_executable, nginx}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: ["-p", ndir, "-c", conf, "-e", "stderr"]
      ])

    wait_listening(p, port, 100)
    pid = File.read!(Path.join(ndir, "nginx.pid")) |> String.trim()
    %{port: port, os_pid: pid, p: p}
  end

  defp stop_nginx(%{os_pid: pid, p: p}) do
    System.cmd("kill", ["-TERM", pid])

    receive do
      {^p, {:exit_status, _}} -> :ok
    after
      10_000 -> :ok
    end
  end

  defp wait_listening(_p, _port, 0), do: raise("nginx did not listen within 10 s")

  defp wait_listening(p, port, n) do
    receive do
      {^p, {:exit_status, s}} -> raise "nginx exited (#{s})"
      {^p, {:data, d}} -> IO.write(:stderr, "nginx: " <> d) && wait_listening(p, port, n)
    after
      100 ->
        case :gen_tcp.connect({127, 0, 0, 1}, port, [], 1000) do
          {:ok, s} -> :gen_tcp.close(s)
          {:error, _} -> wait_listening(p, port, n - 1)
        end
    end
  end

  defp free_port do
    {:ok, l} = :gen_tcp.listen(0, ip: {127, 0, 0, 1}, reuseaddr: true)
    {:ok, port} = :inet.port(l)
    :ok = :gen_tcp.close(l)
    port
  end

  # One worker, connections kept for the whole run (as bench_nginx.erl);
  # every answer a client decodes is `application/json`, so each decodes
  # it because of the content type, as an API client would.
  defp nginx_conf(ndir, port) do
    user =
      if System.cmd("id", ["-u"]) |> elem(0) |> String.trim() == "0", do: "user root;\n", else: ""

    """
    load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
    #{user}daemon off;
    worker_processes 1;
    pid #{ndir}/nginx.pid;
    error_log stderr warn;
    events { worker_connections 4096; }
    http {
        access_log off;
        types { application/json json; }
        default_type text/plain;
        sendfile on;
        tcp_nopush on;
        tcp_nodelay on;
        keepalive_requests 100000000;
        keepalive_timeout 600s;
        client_body_buffer_size 128k;
        client_body_temp_path #{ndir}/body_temp;
        proxy_temp_path #{ndir}/proxy_temp;
        fastcgi_temp_path #{ndir}/fastcgi_temp;
        uwsgi_temp_path #{ndir}/uwsgi_temp;
        scgi_temp_path #{ndir}/scgi_temp;
        server {
            listen 127.0.0.1:#{port};
            root #{ndir}/www;
            location = /echo {
                default_type application/json;
                echo_read_request_body;
                echo_request_body;
            }
            location / { }
        }
    }
    """
  end

  ## Report

  defp header(started, seconds, warmup, rounds, flags, load0) do
    {cpu, _} = System.cmd("sh", ["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"])
    {commit, _} = System.cmd("git", ["rev-parse", "--short", "HEAD"])
    peers = System.get_env("PEERS_LIB")

    vsn = fn app ->
      case :file.consult(Path.join([peers, "#{app}", "ebin", "#{app}.app"])) do
        {:ok, [{:application, _, props}]} -> to_string(props[:vsn])
        _ -> "?"
      end
    end

    """
    erqwest everyday requests (issue 31), #{Calendar.strftime(started, "%Y-%m-%d %H:%M")} UTC, commit #{String.trim(commit)}
    machine: #{String.trim(cpu)}, #{System.schedulers_online()} cores; OTP #{System.otp_release()}, Elixir #{System.version()}
    Req #{vsn.(:req)}, Finch #{vsn.(:finch)}, Jason #{vsn.(:jason)}, Mint #{vsn.(:mint)}; nginx, 1 worker, 127.0.0.1, HTTP/1.1
    each client in its own VM (elixir --erl "#{flags}"), one fresh VM per client per cell and round;
    #{seconds} s measured after #{warmup} s of warm-up, medians of #{rounds} interleaved rounds (order rotating)
    load average at start: #{load0}
    """
  end

  defp median(list) do
    s = Enum.sort(list)
    n = length(s)

    if rem(n, 2) == 1,
      do: Enum.at(s, div(n, 2)),
      else: (Enum.at(s, div(n, 2) - 1) + Enum.at(s, div(n, 2))) / 2
  end

  defp med(runs, client, key),
    do: runs |> Keyword.get_values(client) |> Enum.map(&Map.fetch!(&1, key)) |> median()

  defp table(results, clients) do
    names = Enum.map(clients, &@clients[&1])
    ratios = for c <- tl(clients), do: "erqwest / #{@clients[c]}"
    sched = Enum.map(names, &"sched µs/req #{&1}")

    head =
      "| workers | call | " <>
        Enum.join(names ++ ratios ++ sched, " | ") <>
        " |\n" <>
        "|" <> String.duplicate(" --- |", 2 + length(names) + length(ratios) + length(sched))

    lines =
      for {{row, n}, runs} <- results do
        rates = Enum.map(clients, &med(runs, &1, :rate))
        [e | others] = rates
        rs = Enum.map(others, &ratio(e, &1))
        ss = Enum.map(clients, &fmt1(med(runs, &1, :sched)))

        "| #{n} | #{label(row)} | " <>
          Enum.join(Enum.map(rates, &fmt/1) ++ rs ++ ss, " | ") <> " |"
      end

    Enum.join([head | lines], "\n") <> "\n"
  end

  # Per client, µs per request (medians): the normal and dirty schedulers'
  # busy wall time (scheduler_wall_time), the VM's CPU time and its split
  # by kind of thread (/proc/self/task); every round's rate; the requests
  # whose decoded body was compared with the document.
  defp detail(results, clients, _rounds) do
    head =
      "| workers | call | client | sched µs/req | dirty µs/req | VM CPU µs/req | normal sched CPU | dirty CPU | poller CPU | tokio CPU | other CPU | rates of the rounds | verified | errors |\n" <>
        "|" <> String.duplicate(" --- |", 14)

    lines =
      for {{row, n}, runs} <- results, c <- clients do
        mine = Keyword.get_values(runs, c)

        cols =
          Enum.map(
            [:sched, :dirty, :cpu, :ncpu, :dcpu, :poller, :tokio, :other],
            &fmt1(med(runs, c, &1))
          )

        "| #{n} | #{label(row)} | #{@clients[c]} | " <>
          Enum.join(cols, " | ") <>
          " | " <>
          Enum.map_join(mine, ", ", &fmt(&1.rate)) <>
          " | #{mine |> Enum.map(& &1.verified) |> Enum.sum() |> round()} | " <>
          "#{mine |> Enum.map(& &1.errors) |> Enum.sum() |> round()} |"
      end

    Enum.join([head | lines], "\n") <> "\n"
  end

  defp footer(results, clients, _rows, _workers, loads, load1) do
    checks =
      if Enum.all?([:erqwest, :req, :finch], &(&1 in clients)) do
        for {{row, n}, runs} <- results do
          e = med(runs, :erqwest, :rate)
          r = med(runs, :req, :rate)
          f = med(runs, :finch, :rate)
          ok = e >= 1.5 * r and e >= 1.25 * f

          sched =
            if row == :big do
              es = med(runs, :erqwest, :sched)
              fs = med(runs, :finch, :sched)

              "; sched #{fmt1(es)} vs Finch+Jason #{fmt1(fs)} µs/req: #{if es < fs, do: "met", else: "missed"}"
            else
              ""
            end

          "target #{label(row)}, #{n} workers: #{ratio(e, r)} Req (≥1.50x), #{ratio(e, f)} Finch+Jason (≥1.25x): " <>
            "#{if ok, do: "met", else: "missed"}#{sched}"
        end
      else
        []
      end

    errors = for {_, runs} <- results, {_, r} <- runs, r.errors != 0, do: r

    Enum.join(
      [
        "load average (1, 5, 15 min) before each cell: " <> Enum.join(loads, "; "),
        "load average at the end: #{load1}"
        | if(errors == [], do: ["no errors"], else: ["#{length(errors)} runs with errors"])
      ] ++ checks,
      "\n"
    ) <> "\n"
  end

  defp loadavg,
    do: File.read!("/proc/loadavg") |> String.split() |> Enum.take(3) |> Enum.join(" ")

  def label(row), do: @rows[row]

  defp ratio(_, d) when d == 0, do: "-"
  defp ratio(e, d), do: :erlang.float_to_binary(e / d, decimals: 2) <> "x"

  defp fmt(x), do: x |> round() |> Integer.to_string() |> group()
  defp fmt1(x), do: :erlang.float_to_binary(x / 1, decimals: 1)

  defp group(s) do
    s
    |> String.reverse()
    |> String.to_charlist()
    |> Enum.chunk_every(3)
    |> Enum.join(",")
    |> String.reverse()
  end

  def env_int(name, default) do
    case System.get_env(name) do
      nil -> default
      v -> String.to_integer(v)
    end
  end

  defp env_list(name, default),
    do: (System.get_env(name) || default) |> String.split(",", trim: true)
end

defmodule BenchEveryday.Client do
  # One cell in a VM of its own: N workers loop on one client's call for
  # the warm-up and the window; counts, the normal and dirty schedulers'
  # busy time, the VM's CPU time and erqwest's tokio threads' CPU time are
  # read at the window's two ends.

  def main(client) do
    row = System.fetch_env!("BENCH_EVERYDAY_ROW") |> String.to_atom()
    n = BenchEveryday.env_int("BENCH_EVERYDAY_N", 1)
    seconds = BenchEveryday.env_int("BENCH_EVERYDAY_SECONDS", 4)
    warmup = BenchEveryday.env_int("BENCH_EVERYDAY_WARMUP", 1)
    port = BenchEveryday.env_int("BENCH_EVERYDAY_PORT", 0)
    dir = System.fetch_env!("BENCH_WORK")
    true = Protocol.consolidated?(Enumerable)

    base = "http://127.0.0.1:#{port}"
    post = File.read!(Path.join(dir, "post.json"))
    post_map = Jason.decode!(post)

    # The expected decoded bodies, by Jason in every VM (the clients'
    # results are compared with ==: maps with string keys, integers,
    # exact floats, nil for null), so erqwest's decoder is checked
    # against another one.
    {url, send, expected} =
      case row do
        :small -> {base <> "/small.json", nil, doc(dir, "small.json")}
        :big -> {base <> "/big.json", nil, doc(dir, "big.json")}
        :post -> {base <> "/echo", post_map, post_map}
      end

    call = make_call(client, url, send)
    :erlang.system_flag(:scheduler_wall_time, true)
    measure(call, expected, n, seconds, warmup)
  end

  defp doc(dir, name) do
    Path.join([dir, "nginx", "www", name]) |> File.read!() |> Jason.decode!()
  end

  # Each client as its users write it, returning the decoded body.
  defp make_call(:erqwest, url, send) do
    {:ok, _} = Application.ensure_all_started(:erqwest)
    client = Erqwest.make_client()

    if send == nil,
      do: fn -> body!(Erqwest.get!(client, url)) end,
      else: fn -> body!(Erqwest.post!(client, url, json: send)) end
  end

  defp make_call(:erqwest_noretry, url, send) do
    {:ok, _} = Application.ensure_all_started(:erqwest)
    client = Erqwest.make_client(retry: false)

    if send == nil,
      do: fn -> body!(Erqwest.get!(client, url)) end,
      else: fn -> body!(Erqwest.post!(client, url, json: send)) end
  end

  defp make_call(:erqwest_bare, url, send) do
    {:ok, _} = Application.ensure_all_started(:erqwest)
    client = :erqwest.make_client()

    call =
      if send == nil,
        do: fn -> :erqwest.get(client, url) end,
        else: fn ->
          :erqwest.post(client, url, %{
            headers: [{"content-type", "application/json"}],
            body: Jason.encode!(send)
          })
        end

    fn ->
      {:ok, %{status: 200, headers: h, body: b}} = call.()
      json_body(h, b)
    end
  end

  defp make_call(:req, url, send) do
    {:ok, _} = Application.ensure_all_started(:req)

    if send == nil,
      do: fn -> body!(Req.get!(url)) end,
      else: fn -> body!(Req.post!(url, json: send)) end
  end

  defp make_call(:finch, url, send) do
    {:ok, _} = Application.ensure_all_started(:finch)
    {:ok, _} = Finch.start_link(name: BenchFinch)

    req =
      if send == nil,
        do: fn -> Finch.build(:get, url) end,
        else: fn ->
          Finch.build(:post, url, [{"content-type", "application/json"}], Jason.encode!(send))
        end

    fn ->
      {:ok, %{status: 200, headers: h, body: b}} = Finch.request(req.(), BenchFinch)
      json_body(h, b)
    end
  end

  defp body!(%{status: 200, body: body}), do: body

  # Decoded because the content type says JSON, as a client would.
  defp json_body(headers, body) do
    case List.keyfind(headers, "content-type", 0) do
      {_, "application/json" <> _} -> Jason.decode!(body)
      _ -> body
    end
  end

  defp measure(call, expected, n, seconds, warmup) do
    done = :counters.new(2, [:write_concurrency])
    parent = self()

    pids =
      for _ <- 1..n do
        spawn(fn ->
          # Once per worker: the whole decoded body against the document.
          case call.() do
            ^expected -> send(parent, {:verified, self()})
            other -> send(parent, {:wrong, self(), other})
          end

          loop(call, done)
        end)
      end

    verified =
      Enum.reduce(pids, 0, fn _, acc ->
        receive do
          {:verified, _} -> acc + 1
          {:wrong, _, other} -> raise "decoded body differs: #{inspect(other, limit: 5)}"
        after
          30_000 -> raise "a worker did not answer within 30 s"
        end
      end)

    Process.sleep(warmup * 1_000)
    s0 = snapshot(done)
    Process.sleep(seconds * 1_000)
    s1 = snapshot(done)
    for pid <- pids, do: Process.exit(pid, :kill)

    reqs = s1.count - s0.count
    wall = s1.t - s0.t
    per = fn x -> if reqs > 0, do: x / reqs, else: 0.0 end
    normal = :erlang.system_info(:schedulers)
    dirty = :erlang.system_info(:dirty_cpu_schedulers)
    busy = fn ids -> busy_us(s0.swt, s1.swt, ids, wall) end
    tick = 1_000_000 / BenchEveryday.env_int("BENCH_CLK_TCK", 100)
    th = fn kind -> per.((Map.get(s1.threads, kind, 0) - Map.get(s0.threads, kind, 0)) * tick) end

    IO.puts(
      "RESULT " <>
        Enum.join(
          [
            reqs * 1_000_000 / wall,
            per.(busy.(1..normal)),
            per.(busy.((normal + 1)..(normal + dirty))),
            per.((s1.cpu - s0.cpu) * tick),
            th.(:tokio),
            verified,
            s1.errors,
            th.(:normal),
            th.(:dirty),
            th.(:poller),
            th.(:other)
          ]
          |> Enum.map(&(&1 / 1)),
          " "
        )
    )
  end

  defp loop(call, done) do
    try do
      case call.() do
        b when is_list(b) or is_map(b) -> :counters.add(done, 1, 1)
        _ -> :counters.add(done, 2, 1)
      end
    rescue
      _ -> :counters.add(done, 2, 1)
    end

    loop(call, done)
  end

  defp snapshot(done) do
    %{
      count: :counters.get(done, 1),
      errors: :counters.get(done, 2),
      t: System.monotonic_time(:microsecond),
      swt: :erlang.statistics(:scheduler_wall_time) |> Map.new(fn {i, a, t} -> {i, {a, t}} end),
      cpu: ticks("/proc/self/stat"),
      threads: thread_ticks()
    }
  end

  # Each scheduler's busy share of its own total, times the wall time.
  defp busy_us(s0, s1, ids, wall) do
    ids
    |> Enum.map(fn i ->
      {a0, t0} = s0[i]
      {a1, t1} = s1[i]
      if t1 > t0, do: (a1 - a0) / (t1 - t0) * wall, else: 0.0
    end)
    |> Enum.sum()
  end

  # utime + stime, in clock ticks (fields 14 and 15, after the name).
  defp ticks(stat) do
    case File.read(stat) do
      {:ok, s} ->
        [_, rest] = String.split(s, ") ", parts: 2)
        f = String.split(rest)
        String.to_integer(Enum.at(f, 11)) + String.to_integer(Enum.at(f, 12))

      _ ->
        0
    end
  end

  # CPU ticks by kind of thread, from their names: ERTS's normal
  # schedulers (`N_scheduler`), its dirty CPU schedulers, its poll thread,
  # erqwest's tokio threads (`erqwest-*`), and the rest.
  defp thread_ticks do
    for task <- Path.wildcard("/proc/self/task/*"), reduce: %{} do
      acc ->
        kind =
          case File.read(Path.join(task, "comm")) do
            {:ok, "erqwest" <> _} -> :tokio
            {:ok, name} -> erts_kind(name)
            _ -> :other
          end

        Map.update(
          acc,
          kind,
          ticks(Path.join(task, "stat")),
          &(&1 + ticks(Path.join(task, "stat")))
        )
    end
  end

  defp erts_kind(name) do
    cond do
      name =~ ~r/^\d+_scheduler/ -> :normal
      name =~ ~r/^\d+_dirty_cpu/ -> :dirty
      name =~ ~r/poller/ -> :poller
      true -> :other
    end
  end
end

BenchEveryday.main()
