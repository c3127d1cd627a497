//! Fuzz target: vulnerability feed files: OSV records, CISA KEV, FIRST EPSS, plain or gzip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    flotilla_vulns::fuzzing::feed_file(data);
});
