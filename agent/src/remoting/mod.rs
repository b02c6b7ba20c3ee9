//! The remoting channel, sans-IO: chunk framing, commands, requests and answers.
//!
//! What this module does not do: no sockets, no TLS, no clock. Transports feed it bytes and
//! send the frames it produces; the driver runs handlers for the calls it reports.

pub mod channel;
pub mod classes;
pub mod command;
pub mod frame;
pub mod rewrite;

pub use channel::{capability, Channel, Event, Relayed, HELPER_OID_BASE};
pub use command::{Answer, Reply, UserRequest};

/// Entry point for fuzzers: arbitrary bytes, split at `data[0]`-derived points, through the
/// framer and command decoder. Must never panic; every event must be one of the defined kinds.
#[doc(hidden)]
pub fn fuzz_channel(data: &[u8]) {
    let step = data.first().map(|b| *b as usize % 64 + 1).unwrap_or(1);
    let mut ch = Channel::new();
    for piece in data.chunks(step) {
        for event in ch.receive(piece) {
            if let Event::Call(req) = event {
                // Answer every call, as the driver does: answers must always encode.
                ch.answer(req.id, 0, &Answer::io_error(req.callable_class.clone()));
            }
        }
        let _ = ch.take_frames();
    }
}
