//! What builds parse from controller text: Jenkins environment semantics (overrides, `$VAR`
//! expansion, the override order with cycles), Ant patterns and pattern lists, and the
//! envelopes of received callables. Arbitrary bytes must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    nectr_agent::handlers::fuzz_build_text(data);
});
