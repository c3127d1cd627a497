//! Fuzz target: osquery remote API bodies: enroll, config, distributed read/write, log, carve begin/block; identity and gzip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    flotilla_api::fuzzing::osquery_input(data);
});
