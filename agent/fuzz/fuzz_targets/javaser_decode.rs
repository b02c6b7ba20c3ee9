//! Decoder fuzz target: any bytes; whatever decodes must render, encode and decode again to
//! the same values (see `nectr_agent::javaser::fuzz_roundtrip`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    nectr_agent::javaser::fuzz_roundtrip(data);
});
