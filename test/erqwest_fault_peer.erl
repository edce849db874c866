-module(erqwest_fault_peer).
-compile([export_all, nowarn_export_all]).
init(_C) -> {skip, todo}.
stop(_) -> ok.
run(_, _) -> ok.
panic_in_nif_call() -> ok.
panic_in_request_task() -> ok.
