//! Fuzz target `plyr_sign`: the properties of [`rollcall::fuzzing::sign::check`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rollcall::fuzzing::sign::check(data));
