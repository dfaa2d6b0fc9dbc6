//! The error of a benchmark run.

use std::path::PathBuf;

/// Everything that can stop a benchmark run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A store operation failed while loading the workload or opening a backend.
    #[error("{backend}: {source}")]
    Store {
        /// The backend.
        backend: String,
        /// What the store answered.
        #[source]
        source: chatstore_core::Error,
    },
    /// A file of the report could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A chart could not be drawn.
    #[error("cannot draw {path}: {message}")]
    Chart {
        /// The SVG file.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
    /// The run was asked for something that cannot be done (unknown backend, ...).
    #[error("{0}")]
    Config(String),
}

impl BenchError {
    /// A store error of `backend`.
    pub fn store(backend: &str, source: chatstore_core::Error) -> Self {
        BenchError::Store {
            backend: backend.to_owned(),
            source,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BenchError::Io {
            path: path.into(),
            source,
        }
    }
}
