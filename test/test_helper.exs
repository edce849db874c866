{:ok, _} = Application.ensure_all_started(:erqwest)
ExUnit.start()
