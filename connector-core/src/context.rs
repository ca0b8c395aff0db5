//! [`Context`]: what every factory (source, sink, offset store, transform) is given besides its
//! own config section.
//!
//! It lives apart from the registry so that connectors depend on it without depending on the
//! registry that lists them.

use std::sync::Arc;

use crate::health::Health;
use crate::metrics::Metrics;

/// What a factory is given besides its own config section.
#[derive(Clone, Debug)]
pub struct Context {
    /// The pipeline name.
    pub pipeline: Arc<str>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// The pipeline's phase; a source reports snapshotting or streaming through
    /// [`Health::set_running`].
    pub health: Arc<Health>,
}

impl Context {
    /// A context for pipeline `name` with fresh metrics.
    pub fn new(pipeline: impl Into<Arc<str>>) -> Self {
        Context {
            pipeline: pipeline.into(),
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(Health::default()),
        }
    }
}
