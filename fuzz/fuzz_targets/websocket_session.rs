//! Fuzz target: the live-query results websocket: message sequences through run_session.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = flotilla_api::fuzzing::websocket_session(data);
});
