//! The connection budget of a PostgreSQL server, checked when a pool opens: every replica's
//! pool counts against the server's `max_connections`, less the slots kept for superusers
//! (`superuser_reserved_connections`) and for roles with `pg_use_reserved_connections`
//! (`reserved_connections`, PostgreSQL 16+), less the connections already in use. A pool that
//! cannot fit is refused at start, with the numbers and the fix, instead of failing later under
//! load with "too many clients".
//!
//! Sizing N replicas: `N x CHATSTORE_POOL_SIZE` (plus pgvector's pool when it is separate) must
//! stay below `max_connections - superuser_reserved_connections - reserved_connections`, with
//! room left for migrations, admin sessions and monitoring. PgBouncer in transaction mode lifts
//! the limit: the pools then count against PgBouncer, which holds few server connections.
//!
//! ```
//! use chatstore_core::pool_budget::PoolBudget;
//!
//! let budget = PoolBudget { max_connections: 100, superuser_reserved: 3, reserved: 0, in_use: 90 };
//! assert_eq!(budget.free(), 7);
//! assert!(budget.check(5).is_ok());
//! assert!(budget.check(10).is_err());
//! ```

use crate::{Error, Result};

/// One text naming a PostgreSQL database and the server run that serves it (its name, its
/// oid, the postmaster's start time), the same through a pooler and directly: an adapter
/// compares it to tell whether a direct URL reaches the database its pool does.
pub const DATABASE_IDENTITY: &str = "SELECT current_database()::text || '/' || \
    (SELECT oid FROM pg_database WHERE datname = current_database())::text || '/' || \
    extract(epoch FROM pg_postmaster_start_time())::text";

/// One row: `max_connections`, `superuser_reserved`, `reserved`, `in_use` (client backends,
/// the asking connection included) and `server_port` (NULL over a Unix socket). Both PostgreSQL
/// adapters run it on their first connection.
pub const POSTGRES_QUERY: &str = "SELECT \
    current_setting('max_connections')::int AS max_connections, \
    current_setting('superuser_reserved_connections')::int AS superuser_reserved, \
    coalesce(current_setting('reserved_connections', true), '0')::int AS reserved, \
    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS in_use, \
    inet_server_port() AS server_port";

/// What a PostgreSQL server allows and what is already taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolBudget {
    /// The server's `max_connections`.
    pub max_connections: u32,
    /// `superuser_reserved_connections`.
    pub superuser_reserved: u32,
    /// `reserved_connections` (0 before PostgreSQL 16).
    pub reserved: u32,
    /// Client connections open now, not counting the pool being checked.
    pub in_use: u32,
}

impl PoolBudget {
    /// Connections an ordinary role can still open.
    pub fn free(&self) -> u32 {
        self.max_connections
            .saturating_sub(self.superuser_reserved)
            .saturating_sub(self.reserved)
            .saturating_sub(self.in_use)
    }

    /// `Ok` when a pool of `pool_size` fits; otherwise `InvalidInput` naming the numbers and
    /// the fix.
    pub fn check(&self, pool_size: u32) -> Result<()> {
        let free = self.free();
        if pool_size <= free {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "a pool of {pool_size} connections does not fit on this PostgreSQL server: \
             max_connections {} - superuser_reserved_connections {} - reserved_connections {} \
             - {} in use = {free} free. Lower CHATSTORE_POOL_SIZE (N replicas x pool size must \
             stay below {}), raise max_connections, or put PgBouncer (transaction mode) in front",
            self.max_connections,
            self.superuser_reserved,
            self.reserved,
            self.in_use,
            self.max_connections
                .saturating_sub(self.superuser_reserved)
                .saturating_sub(self.reserved),
        )))
    }
}

/// Whether the connection reached PostgreSQL through a pooler such as PgBouncer: the server
/// reports another port than the client dialled, or a Unix socket while the client used TCP.
/// Then the pool counts against the pooler, not against `max_connections`.
pub fn behind_pooler(dialled_port: Option<u16>, server_port: Option<i32>) -> bool {
    match (dialled_port, server_port) {
        (Some(dialled), Some(server)) => i32::from(dialled) != server,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn budget(in_use: u32) -> PoolBudget {
        PoolBudget {
            max_connections: 100,
            superuser_reserved: 3,
            reserved: 2,
            in_use,
        }
    }

    #[test]
    fn a_pool_that_fits_is_accepted() {
        assert!(budget(0).check(95).is_ok());
        assert!(budget(85).check(10).is_ok());
    }

    #[test]
    fn a_pool_that_does_not_fit_is_refused_with_the_numbers() {
        let err = budget(90).check(10).expect_err("5 free");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let text = err.to_string();
        for needle in [
            "10 connections",
            "max_connections 100",
            "superuser_reserved_connections 3",
            "reserved_connections 2",
            "90 in use",
            "5 free",
            "below 95",
            "CHATSTORE_POOL_SIZE",
            "PgBouncer",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from {text}");
        }
    }

    #[test]
    fn an_overfull_server_has_nothing_free() {
        assert_eq!(budget(200).free(), 0);
        assert!(budget(200).check(1).is_err());
    }

    #[test]
    fn a_pooler_shows_as_another_port() {
        assert!(!behind_pooler(Some(5432), Some(5432)));
        assert!(behind_pooler(Some(6432), Some(5432)));
        assert!(behind_pooler(Some(6432), None));
        assert!(!behind_pooler(None, None));
    }
}
