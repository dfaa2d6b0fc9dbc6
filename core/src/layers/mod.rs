//! Layers written once for every backend (see [`Layer`](crate::Layer)): input validation,
//! which every [`Store`](crate::Store) gets from [`Store::new`](crate::Store::new), and metrics.

pub mod metrics;
pub mod validate;
