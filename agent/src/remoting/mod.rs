//! The remoting channel, sans-IO: chunk framing, commands, requests and answers.
//!
//! What this module does not do: no sockets, no TLS, no clock. Transports feed it bytes and
//! send the frames it produces; the driver runs handlers for the calls it reports.

pub mod channel;
pub mod classes;
pub mod command;
pub mod frame;

pub use channel::{capability, Channel, Event};
pub use command::{Answer, UserRequest};
