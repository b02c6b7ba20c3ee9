//! The catalog of callables nectr runs natively: the tables of the family modules, merged.
//! A class name appears in exactly one table (a unit test checks it); anything not found
//! here is plugin code for the JVM helper or, without it, answered with a clear exception.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{archive, bringup, durable, files, process, ui, Native};

/// Every native callable, family by family.
pub fn all() -> impl Iterator<Item = &'static Native> {
    [
        bringup::CALLABLES,
        files::CALLABLES,
        process::CALLABLES,
        durable::CALLABLES,
        archive::CALLABLES,
        ui::CALLABLES,
    ]
    .into_iter()
    .flatten()
}

/// The entry for Java class `class`.
pub fn lookup(class: &str) -> Option<&'static Native> {
    static MAP: OnceLock<HashMap<&'static str, &'static Native>> = OnceLock::new();
    MAP.get_or_init(|| all().map(|n| (n.class, n)).collect())
        .get(class)
        .copied()
}

/// True if nectr runs `class` natively.
pub fn is_native(class: &str) -> bool {
    lookup(class).is_some()
}
