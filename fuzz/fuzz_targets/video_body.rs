//! Fuzz target `video_body`: the properties of [`rollcall::fuzzing::video::check`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rollcall::fuzzing::video::check(data));
