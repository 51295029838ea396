//! Fuzz target `config_toml`: the properties of [`rollcall::fuzzing::config::check`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rollcall::fuzzing::config::check(data));
