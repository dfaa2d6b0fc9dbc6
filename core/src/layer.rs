//! Layers: behaviour written once that wraps any [`Store`] (validation, metrics, retries,
//! routing), the way tower's `Layer` wraps a service.

use crate::Store;

/// Wraps a store in another store with the same contract.
///
/// A layer usually wraps each repository of [`Store::parts`] in a type that implements the same
/// trait and delegates to the inner one, then rebuilds a [`Store`] with the inner store's name
/// and capabilities (or ones it changes on purpose).
///
/// ```
/// use chatstore_core::{Layer, Store, memory};
///
/// /// Renames the backend, leaving every repository as it is.
/// struct Named(&'static str);
///
/// impl Layer for Named {
///     fn layer(&self, store: Store) -> Store {
///         Store::new(self.0, store.capabilities(), store.parts())
///     }
/// }
///
/// let store = memory::store().with_layer(&Named("memory (named)"));
/// assert_eq!(store.backend_name(), "memory (named)");
/// ```
pub trait Layer: Send + Sync {
    /// The wrapped store.
    fn layer(&self, store: Store) -> Store;
}

impl Store {
    /// This store wrapped in `layer`.
    /// The change feed stays the inner store's unless the layer gives the store another.
    pub fn with_layer<L: Layer + ?Sized>(self, layer: &L) -> Store {
        let changes = self.changes();
        let layered = layer.layer(self);
        match (layered.changes(), changes) {
            (None, Some(feed)) => layered.with_changes(feed),
            _ => layered,
        }
    }
}
