//! Record JSON → lake row: any record value becomes a row (that re-encodes to itself) or a reject with a reason,
//! and the sink's streaming decoder agrees with the reference one (`ticklake::fuzzing::record_json`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ticklake::fuzzing::record_json(data);
});
