//! Fuzz target: the update server's TUF metadata as loaded and verified at start.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = flotilla_updates::fuzzing::repository_metadata(data);
});
