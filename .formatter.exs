[
  inputs: ["{mix,.formatter,.iex}.exs", "{lib,test}/**/*.{ex,exs}"]
]
