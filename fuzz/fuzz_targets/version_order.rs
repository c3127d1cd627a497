//! Fuzz target: version ordering per ecosystem and rpmvercmp: antisymmetry, reflexivity, transitivity.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    flotilla_vulns::fuzzing::version_order(data);
});
