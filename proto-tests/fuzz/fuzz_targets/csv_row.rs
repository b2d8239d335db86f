//! CSV row → record: any bytes after a preset's header parse into a row that round-trips through replay's JSON, or
//! are refused with a reason (`ticklake::fuzzing::csv_row`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ticklake::fuzzing::csv_row(data);
});
