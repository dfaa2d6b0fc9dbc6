//! Direct connections and transaction poolers (PgBouncer in transaction mode).
//!
//! A transaction pooler hands each transaction to whichever server connection is free, so
//! between two transactions nothing of a session survives: named prepared statements, `SET`,
//! session advisory locks, temporary tables. And a statement outside a transaction is not even
//! one unit: sqlx sends an unnamed statement's Parse and its Bind/Execute as two exchanges
//! (each ends with Sync), which the pooler may give to two server connections.
//!
//! So when the store is reached through a pooler (detected at open, see
//! `chatstore_core::pool_budget::behind_pooler`) every statement is unnamed
//! ([`Prepare::Unnamed`]) and runs inside a transaction ([`Session::Pooled`]); directly, statements
//! stay named and cached per connection and reads run on a plain pooled connection, as before.
//! Work that needs a session of its own (`CREATE INDEX CONCURRENTLY` under a session advisory
//! lock) connects to the server itself: `PgVectorConfig::direct_url` behind a pooler.

use std::ops::{Deref, DerefMut};

use chatstore_core::Result;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{FromRow, PgConnection, PgPool, Postgres, SqlSafeStr, Transaction};

use crate::error::during;

/// How statements are prepared on the pool's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prepare {
    /// Named and cached per connection (a direct connection to the server).
    Named,
    /// Unnamed, never cached (through a transaction pooler, where a named statement prepared
    /// in one transaction is missing, or another client's, in the next).
    Unnamed,
}

impl Prepare {
    /// How a statement that binds a whole write's ids (`id = ANY($1)`) is prepared: unnamed,
    /// so that PostgreSQL plans it at every call with the ids in hand. After five calls a
    /// named statement may keep one generic plan for good, and a generic plan made while the
    /// table was empty (a new deployment, a bulk load, after a `TRUNCATE`) scans the whole
    /// table and compares each row with every id: 41 ms for 5,000 ids against 1,000 rows,
    /// 223 ms against 6,000, where the plan made with the ids uses an index and runs in
    /// 3-4 ms (the README's "Statements planned per call"). The price, a round trip and the
    /// planning (under a millisecond for 5,000 ids), is paid only by writes of 64 rows or more.
    pub(crate) const PER_CALL: Prepare = Prepare::Unnamed;

    fn persistent(self) -> bool {
        self == Prepare::Named
    }

    /// A statement prepared this way.
    pub(crate) fn query<'a>(self, sql: impl SqlSafeStr) -> Query<'a, Postgres, PgArguments> {
        sqlx::query(sql).persistent(self.persistent())
    }

    /// A statement returning one column, prepared this way.
    pub(crate) fn scalar<'a, O>(
        self,
        sql: impl SqlSafeStr,
    ) -> QueryScalar<'a, Postgres, O, PgArguments>
    where
        (O,): for<'r> FromRow<'r, PgRow>,
    {
        sqlx::query_scalar(sql).persistent(self.persistent())
    }

    /// A statement whose rows decode as `O`, prepared this way.
    pub(crate) fn rows<'a, O>(self, sql: impl SqlSafeStr) -> QueryAs<'a, Postgres, O, PgArguments>
    where
        O: for<'r> FromRow<'r, PgRow>,
    {
        sqlx::query_as(sql).persistent(self.persistent())
    }

    /// A dynamic statement (`QueryBuilder`), prepared this way.
    pub(crate) fn built<'a>(
        self,
        query: Query<'a, Postgres, PgArguments>,
    ) -> Query<'a, Postgres, PgArguments> {
        query.persistent(self.persistent())
    }
}

/// A connection for a few statements in a row: a plain pooled connection when the server is
/// reached directly, a transaction through a pooler (the only unit a pooler keeps on one server
/// connection). End it with [`Session::finish`]; dropped early, a transaction rolls back.
pub(crate) enum Session {
    /// A connection of the pool (direct).
    Direct(PoolConnection<Postgres>),
    /// A transaction (through a pooler).
    Pooled(Transaction<'static, Postgres>),
}

impl Session {
    /// A session on `pool`, as `prepare` says the pool is reached.
    pub(crate) async fn open(pool: &PgPool, prepare: Prepare) -> Result<Session> {
        match prepare {
            Prepare::Named => pool
                .acquire()
                .await
                .map(Session::Direct)
                .map_err(during("acquiring a connection")),
            Prepare::Unnamed => pool
                .begin()
                .await
                .map(Session::Pooled)
                .map_err(during("opening a transaction")),
        }
    }

    /// Ends the session (commits the pooled transaction).
    pub(crate) async fn finish(self) -> Result<()> {
        match self {
            Session::Direct(_) => Ok(()),
            Session::Pooled(tx) => tx.commit().await.map_err(during("ending a transaction")),
        }
    }
}

impl Deref for Session {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self {
            Session::Direct(c) => c,
            Session::Pooled(t) => t,
        }
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Session::Direct(c) => c,
            Session::Pooled(t) => t,
        }
    }
}
