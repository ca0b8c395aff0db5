//! The connectors that ship in `connector-core` and [`Registry::with_builtins`], which lists them:
//! kept outside `registry.rs` so that the registry imports no connector (and no connector imports
//! the registry).
//!
//! A new built-in source, sink, offset store or transform is added here, in one line.

use crate::offsets::{FileOffsetStore, OffsetStore};
use crate::registry::Registry;
use crate::transform::{columns, filter, mask, outbox, route};
use crate::{file_sink, generator};

impl Registry {
    /// The connectors that ship in `connector-core`: the `generator` source, the `stdout` and
    /// `file` sinks, the `file` offset store, and the transforms `filter`, `columns`, `mask`,
    /// `route` and `outbox`.
    pub fn with_builtins() -> Self {
        let mut r = Registry::new();
        add_builtins(&mut r);
        r
    }
}

fn add_builtins(r: &mut Registry) {
    r.add_source("generator", generator::factory);
    r.add_sink("stdout", file_sink::stdout_factory);
    r.add_sink("file", file_sink::file_factory);
    r.add_offset_store("file", |section, _ctx| {
        Ok(Box::new(FileOffsetStore::from_config(section)?) as Box<dyn OffsetStore>)
    });
    r.add_transform("filter", filter::factory);
    r.add_transform("columns", columns::factory);
    r.add_transform("mask", mask::factory);
    r.add_transform("route", route::factory);
    r.add_transform("outbox", outbox::factory);
}
