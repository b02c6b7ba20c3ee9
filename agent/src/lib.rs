//! nectr-agent: a Jenkins inbound agent without a JVM.
//!
//! Layers, bottom up (see ARCHITECTURE.md):
//! * [`javaser`]: Java Object Serialization, sans-IO.
//! * [`debug`]: dumps of captured bytes for people (`nectr-agent debug …`).

#![warn(missing_docs)]

pub mod debug;
pub mod javaser;
