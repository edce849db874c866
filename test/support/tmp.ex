defmodule Erqwest.Test.Tmp do
  @moduledoc "A fresh directory under the system's temp dir, removed when the test exits."

  import ExUnit.Callbacks, only: [on_exit: 1]

  def dir!(prefix \\ "erqwest-test") do
    dir = Path.join(System.tmp_dir!(), "#{prefix}-#{System.unique_integer([:positive])}")
    File.rm_rf!(dir)
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    dir
  end
end
