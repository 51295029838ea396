//! Fuzz target `ws_message`: the properties of [`rollcall::fuzzing::ws::check`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rollcall::fuzzing::ws::check(data));
