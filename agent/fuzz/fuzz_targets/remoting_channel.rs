//! Channel fuzz target: framer + command decoder + answers, on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    nectr_agent::remoting::fuzz_channel(data);
});
