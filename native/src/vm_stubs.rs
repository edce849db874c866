//! Stand-ins for the VM's `enif_*` functions, linked into the unit-test
//! executable only. Inside the VM these symbols come from the emulator;
//! a test binary has no emulator, and the pure-logic tests never call into
//! it. Should one ever do so, it aborts at once rather than misbehave.

macro_rules! stubs {
    ($($name:ident),* $(,)?) => {
        $(
            #[no_mangle]
            extern "C" fn $name() {
                std::process::abort()
            }
        )*
    };
}

stubs!(
    enif_alloc_env,
    enif_alloc_resource,
    enif_clear_env,
    enif_free_env,
    enif_get_list_cell,
    enif_get_local_pid,
    enif_get_resource,
    enif_get_tuple,
    enif_get_ulong,
    enif_inspect_binary,
    enif_inspect_iolist_as_binary,
    enif_is_atom,
    enif_is_empty_list,
    enif_is_exception,
    enif_is_identical,
    enif_is_list,
    enif_is_map,
    enif_keep_resource,
    enif_make_atom_len,
    enif_make_badarg,
    enif_make_binary,
    enif_make_copy,
    enif_make_list_from_array,
    enif_make_map_from_arrays,
    enif_make_new_binary,
    enif_make_resource,
    enif_make_resource_binary,
    enif_make_tuple_from_array,
    enif_make_uint,
    enif_make_ulong,
    enif_map_iterator_create,
    enif_map_iterator_destroy,
    enif_map_iterator_get_pair,
    enif_map_iterator_next,
    enif_map_iterator_prev,
    enif_monitor_process,
    enif_open_resource_type_x,
    enif_raise_exception,
    enif_release_resource,
    enif_schedule_nif,
    enif_select,
    enif_self,
    enif_send,
    enif_thread_type,
);

// The JSON codec's (json.rs).
stubs!(
    enif_binary_to_term,
    enif_get_atom,
    enif_get_atom_length,
    enif_get_double,
    enif_get_long,
    enif_get_map_size,
    enif_make_double,
    enif_make_list_cell,
    enif_make_long,
    enif_make_map_put,
    enif_make_new_map,
    enif_release_binary,
    enif_term_to_binary,
    enif_term_type,
);
