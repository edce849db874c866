defmodule Erqwest.Events.Event do
  @moduledoc """
  One server-sent event, as `Erqwest.Events.stream/3` yields it.

    * `type` — the `event:` field, `"message"` when the server gave none
    * `data` — the `data:` lines joined with `"\\n"`; the decoded JSON with
      `data: :json`
    * `id` — the last event ID when the event arrived (it carries over
      from earlier events), or `nil`
    * `json_error` — `true` when `data: :json` was asked for and the data
      is not JSON (such as `"[DONE]"`); `data` is then the string

      iex> Erqwest.Events.Event.new(%{type: "message", data: "hi", id: :undefined})
      %Erqwest.Events.Event{type: "message", data: "hi", id: nil, json_error: false}
  """

  defstruct type: "message", data: "", id: nil, json_error: false

  @typedoc ~s|An event: `%Erqwest.Events.Event{type: "message", data: "hi", id: nil, json_error: false}`.|
  @type t :: %__MODULE__{
          type: String.t(),
          data: String.t() | term(),
          id: String.t() | nil,
          json_error: boolean()
        }

  @doc """
  Builds the struct from the Erlang event map of an `:event` message.

      iex> Erqwest.Events.Event.new(%{type: "message", data: "hi", id: "1"})
      %Erqwest.Events.Event{type: "message", data: "hi", id: "1", json_error: false}
  """
  @spec new(:erqwest_events.sse_event()) :: t()
  def new(%{type: type, data: data, id: id} = event) do
    %__MODULE__{
      type: type,
      data: data,
      id: if(id == :undefined, do: nil, else: id),
      json_error: Map.get(event, :json_error, false)
    }
  end
end
