//! nectr-agent: a Jenkins inbound agent without a JVM.
//!
//! Layers, bottom up (see ARCHITECTURE.md):
//! * [`javaser`]: Java Object Serialization, sans-IO.
//! * [`debug`]: dumps of captured bytes for people (`nectr-agent debug …`).

#![warn(missing_docs)]

pub mod agent;
pub mod antglob;
pub mod cli;
pub mod debug;
pub mod envvars;
pub mod handlers;
pub mod javaser;
pub mod jvm;
pub mod logring;
pub mod proctree;
pub mod remoting;
pub mod streams;
pub mod tar;
pub mod transport;
