//! Simulation of Jenkins + EC2 driving the same [`crate::scaler::observe`] and
//! [`crate::scaler::decide`] the service runs.
//!
//! - [`faults`]: the fault-injection simulator (assignment race, delayed describes) behind the
//!   10,000-scale-ins test.
//! - [`engine`]: the discrete-event cost simulator: a virtual clock jumping from event to
//!   event (arrivals, boots, build ends, spot interruptions, manager polls), per-second
//!   billing with a 60 s minimum, capacity errors, Jenkins' FIFO dispatch to idle executors.
//! - [`policy`]: the managers compared on the same world: nectr (the real `decide` and
//!   fence), Jenkins-core-like, ec2-plugin-like, ec2-fleet-like; and [`optimum`], the offline
//!   lower bound.
//! - [`workload`]: generators (Poisson, office-hours day, merge-wave burst, week) and the
//!   import of a controller's build history.
//! - [`report`], [`plot`], [`cli`]: `nectr-fleet simulate`.

pub mod cli;
pub mod engine;
pub mod faults;
pub mod optimum;
pub mod plot;
pub mod policy;
pub mod report;
pub mod workload;

pub use faults::{Rng, Sim, SimStats};

#[cfg(test)]
mod tests;
