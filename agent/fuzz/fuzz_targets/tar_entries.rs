//! Tar reader fuzz target: headers, GNU long names, PAX records and data, on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = nectr_agent::tar::scan(data);
});
