//! The registry: `type:` names to factories for sources, sinks and offset stores.
//!
//! A binary builds one [`Registry`] in a single explicit function (see the `cdc` crate's
//! `registry()`), and a third party adds its own connector to it in one line:
//!
//! ```
//! # use connector_core::{Registry, Context, ConfigSection, Source, Result};
//! # fn my_source(_: &ConfigSection, _: &Context) -> Result<Box<dyn Source>> { unimplemented!() }
//! let mut registry = Registry::with_builtins();
//! registry.add_source("my-source", my_source);
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::ConfigSection;
/// Re-exported here, where it was first defined, so that `connector_core::registry::Context` keeps
/// working.
pub use crate::context::Context;
use crate::error::{Error, Result};
use crate::offsets::OffsetStore;
use crate::sink::Sink;
use crate::source::Source;
use crate::transform::{Transform, TransformChain, TransformFactory};

/// Builds a source from its config section.
pub type SourceFactory =
    Arc<dyn Fn(&ConfigSection, &Context) -> Result<Box<dyn Source>> + Send + Sync>;
/// Builds a sink from its config section.
pub type SinkFactory = Arc<dyn Fn(&ConfigSection, &Context) -> Result<Box<dyn Sink>> + Send + Sync>;
/// Builds an offset store from its config section.
pub type OffsetStoreFactory =
    Arc<dyn Fn(&ConfigSection, &Context) -> Result<Box<dyn OffsetStore>> + Send + Sync>;

/// `type:` names to factories.
#[derive(Clone, Default)]
pub struct Registry {
    sources: BTreeMap<String, SourceFactory>,
    sinks: BTreeMap<String, SinkFactory>,
    offset_stores: BTreeMap<String, OffsetStoreFactory>,
    transforms: BTreeMap<String, TransformFactory>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field("sinks", &self.sinks.keys().collect::<Vec<_>>())
            .field(
                "offset_stores",
                &self.offset_stores.keys().collect::<Vec<_>>(),
            )
            .field("transforms", &self.transforms.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    // `Registry::with_builtins` is in `builtin.rs`, so that this file imports no connector.

    /// Register a source under `name` (replacing one of the same name).
    pub fn add_source<F>(&mut self, name: &str, factory: F) -> &mut Self
    where
        F: Fn(&ConfigSection, &Context) -> Result<Box<dyn Source>> + Send + Sync + 'static,
    {
        self.sources.insert(name.to_string(), Arc::new(factory));
        self
    }

    /// Register a sink under `name`.
    pub fn add_sink<F>(&mut self, name: &str, factory: F) -> &mut Self
    where
        F: Fn(&ConfigSection, &Context) -> Result<Box<dyn Sink>> + Send + Sync + 'static,
    {
        self.sinks.insert(name.to_string(), Arc::new(factory));
        self
    }

    /// Register an offset store under `name`.
    pub fn add_offset_store<F>(&mut self, name: &str, factory: F) -> &mut Self
    where
        F: Fn(&ConfigSection, &Context) -> Result<Box<dyn OffsetStore>> + Send + Sync + 'static,
    {
        self.offset_stores
            .insert(name.to_string(), Arc::new(factory));
        self
    }

    /// Register a transform under `name` (a `transforms:` entry's `type:`).
    pub fn add_transform<F>(&mut self, name: &str, factory: F) -> &mut Self
    where
        F: Fn(&ConfigSection, &Context) -> Result<Box<dyn Transform>> + Send + Sync + 'static,
    {
        self.transforms.insert(name.to_string(), Arc::new(factory));
        self
    }

    /// Names of the registered transforms.
    pub fn transform_names(&self) -> Vec<&str> {
        self.transforms.keys().map(String::as_str).collect()
    }

    /// Build the `transforms:` list, in order.
    pub fn build_transforms(
        &self,
        sections: &[ConfigSection],
        ctx: &Context,
    ) -> Result<TransformChain> {
        let mut steps = Vec::with_capacity(sections.len());
        for section in sections {
            let factory = lookup(&self.transforms, section)?;
            steps.push((Arc::from(section.key()), factory(section, ctx)?));
        }
        Ok(TransformChain::new(steps))
    }

    /// Names of the registered sources, sinks and offset stores.
    pub fn names(&self) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
        (
            self.sources.keys().map(String::as_str).collect(),
            self.sinks.keys().map(String::as_str).collect(),
            self.offset_stores.keys().map(String::as_str).collect(),
        )
    }

    /// Build the source its section names.
    pub fn build_source(&self, section: &ConfigSection, ctx: &Context) -> Result<Box<dyn Source>> {
        lookup(&self.sources, section)?(section, ctx)
    }

    /// Build the sink its section names.
    pub fn build_sink(&self, section: &ConfigSection, ctx: &Context) -> Result<Box<dyn Sink>> {
        lookup(&self.sinks, section)?(section, ctx)
    }

    /// Build the offset store its section names.
    pub fn build_offset_store(
        &self,
        section: &ConfigSection,
        ctx: &Context,
    ) -> Result<Box<dyn OffsetStore>> {
        lookup(&self.offset_stores, section)?(section, ctx)
    }
}

fn lookup<'a, F>(map: &'a BTreeMap<String, F>, section: &ConfigSection) -> Result<&'a F> {
    map.get(section.kind()).ok_or_else(|| {
        let known = map
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let what = section.key().split('[').next().unwrap_or_default();
        let what = what.strip_suffix('s').unwrap_or(what);
        Error::config(format!(
            "key `{}.type`: unknown {what} type {:?}: expected one of {known}",
            section.key(),
            section.kind()
        ))
    })
}
