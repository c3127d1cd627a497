//! Fuzz target: fleetctl spec files (YAML) and the spec bodies the server reads from them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    flotilla_api::fuzzing::spec_file(data);
});
