//! What a backend can do.

/// The operations a backend supports. A backend that lacks one answers
/// [`Error::Unsupported`](crate::Error::Unsupported) for it; it never panics and never returns a
/// silent `Ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// `UserRepo` works.
    pub users: bool,
    /// `ChatRepo`, `MessageRepo` and `TagRepo` work.
    pub chats: bool,
    /// `FileRepo` works.
    pub files: bool,
    /// `VectorRepo` works.
    pub vectors: bool,
    /// Bulk writes are all-or-nothing.
    pub atomic_bulk: bool,
    /// [`Store::changes`](crate::Store::changes) gives a change feed (set by the store itself).
    pub change_feed: bool,
    /// Vectors and float metadata read back bit for bit as written. Chroma keeps a cosine
    /// collection's vectors normalised with their norm, so a component can come back a few
    /// ulps off, and its server reads a float of 17 significant digits one unit in the last
    /// place off now and then; compare such values within their rounding.
    pub exact_vectors: bool,
    /// Vectors are kept in half precision (pgvector's `halfvec` column, Open WebUI's
    /// `PGVECTOR_USE_HALFVEC`): a component reads back within 2^-11 of its magnitude (about
    /// three significant digits) and distances are computed from such vectors. Comparisons
    /// with another store use [`Precision::HalfVectors`](crate::compare::Precision).
    pub half_vectors: bool,
}

impl Capabilities {
    /// Every capability.
    pub const ALL: Capabilities = Capabilities {
        users: true,
        chats: true,
        files: true,
        vectors: true,
        atomic_bulk: true,
        change_feed: true,
        exact_vectors: true,
        half_vectors: false,
    };
}
