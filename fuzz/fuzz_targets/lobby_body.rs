//! Fuzz target `lobby_body`: the properties of [`rollcall::fuzzing::lobby::check`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rollcall::fuzzing::lobby::check(data));
