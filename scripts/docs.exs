# Builds the HTML site with ExDoc from the compiled modules: the Elixir
# ones carry their docs; the Erlang ones' docs are the EEP 48 chunks
# scripts/docs.sh made from their edoc (ebin/../doc/chunks).
# Run by scripts/docs.sh: mix run --no-start --no-compile scripts/docs.exs EBIN OUT
[ebin, out] = System.argv()

unless Code.ensure_loaded?(ExDoc) do
  IO.puts(:stderr, "make docs: ExDoc is not on the code path (PEERS_LIB)")
  System.halt(1)
end

# ExDoc's application holds its tables (ExDoc.Refs) and the highlighters.
{:ok, _} = Application.ensure_all_started(:ex_doc)

root = Path.expand("..", __DIR__)
version = root |> Path.join("VERSION") |> File.read!() |> String.trim()

guides = [
  "guides/getting-started.md",
  "guides/composing-requests.md",
  "guides/streaming.md",
  "guides/event-streams.md",
  "guides/pagination-and-operations.md",
  "guides/resilience.md",
  "guides/performance.md",
  "guides/req-and-tesla.md",
  "guides/telemetry-and-stubs.md",
  "guides/installing.md",
  "guides/working-on-erqwest.md"
]

extras =
  [{"README.md", [title: "Overview"]}] ++
    Enum.map(guides, &{&1, []}) ++
    [{"CHANGELOG.md", [title: "Changelog"]}]

# Erlang readers search for `erqwest:req`; ExDoc indexes functions as
# `erqwest.req/2`. Before ExDoc's own scripts read the query, the search
# page turns a leading `module:function` into `module.function`.
search_colon = """
<script>
(function () {
  var params = new URLSearchParams(window.location.search);
  var q = params.get("q");
  if (q && /^[a-z][A-Za-z0-9_@]*:[a-z]/.test(q)) {
    params.set("q", q.replace(":", "."));
    window.history.replaceState(null, "", window.location.pathname + "?" + params.toString());
  }
})();
</script>
"""

ExDoc.generate_docs("erqwest", version,
  source_beam: ebin,
  output: out,
  formatter: "html",
  main: "readme",
  source_url: "https://github.com/erqwest/erqwest",
  source_ref: "v#{version}",
  extras: Enum.map(extras, fn {path, opts} -> {String.to_atom(Path.join(root, path)), opts} end),
  before_closing_head_tag: fn
    :html -> search_colon
    _ -> ""
  end,
  # erqwest_nif's private direct-path functions name erqwest_direct's
  # opaque call(), a module that is @private on purpose.
  skip_undefined_reference_warnings_on: ["erqwest_nif"],
  groups_for_extras: [Guides: ~r{/guides/}, About: ~r{CHANGELOG}],
  groups_for_modules: [
    "Clients and requests": [
      Erqwest,
      Erqwest.Response,
      Erqwest.Async,
      :erqwest,
      :erqwest_async,
      :erqwest_default
    ],
    Runtime: [:erqwest_runtime, :erqwest_nif],
    Streaming: [Erqwest.Upload],
    "Event streams": [Erqwest.Events, Erqwest.Events.Event, :erqwest_events],
    Pagination: [Erqwest.Pages, :erqwest_pages],
    Operations: [Erqwest.Operation, :erqwest_operation],
    JSON: [Erqwest.JSON, :erqwest_json, :erqwest_json_pointer],
    "Req, Tesla, telemetry and tests": [
      Erqwest.Req,
      Tesla.Adapter.Erqwest,
      Erqwest.Test,
      :erqwest_test,
      :erqwest_telemetry
    ],
    Errors: [
      Erqwest.Error,
      Erqwest.JSON.DecodeError,
      Erqwest.JSON.EncodeError,
      Erqwest.Operation.Error
    ]
  ]
)
|> then(fn index -> IO.puts("erqwest: HTML docs in #{index}") end)

# The pages load docs_config.js (on hexdocs, the list of versions); a
# local build has one version, so the file says just that.
File.write!(Path.join(out, "docs_config.js"), """
var versionNodes = [{version: "v#{version}", url: "index.html"}];
""")
