//! Raw baselines: the benchmarked operations written directly against a backend's driver (raw
//! sqlx with the adapter's SQL, raw HTTP calls to the same PocketBase endpoints), so that the
//! report can state the abstraction's overhead as a ratio.
//!
//! A baseline implements the operations it has; the others keep the default body, which
//! answers [`Error::Unsupported`] and leaves that row of the report without a baseline ratio.
//! A baseline runs against the same, already loaded database as its backend's [`Store`] and
//! draws its inputs from the same [`Fixture`], so both do the same work.
//!
//! [`Store`]: chatstore_core::Store

use async_trait::async_trait;
use chatstore_core::{Error, Result};

use crate::models::RowPlan;
use crate::ops::{Fixture, Op};
use crate::streaming::Source;
use crate::workload::Workload;

/// The same operations as [`crate::ops`], written against a driver instead of a `Store`.
/// Every method is iteration `i` of the operation of the same name.
#[async_trait]
pub trait RawBaseline: Send + Sync {
    /// What the baseline is, for the report (`"raw sqlx"`, `"raw HTTP"`).
    fn name(&self) -> &'static str;

    /// Loads the whole workload into this baseline's database the driver's own bulk way
    /// (PocketBase's batch API, multi-row `INSERT`s), calling `progress` with the records
    /// written. The report calls it on a second, fresh opening of the backend and compares its
    /// records/s with the adapter's load (PocketBase's target: the adapter's bulk import at
    /// least 80% of the batch API's throughput).
    async fn import(&self, _workload: &Workload, _progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        Err(Error::unsupported("raw baseline", "import"))
    }

    /// Loads the workload's users and chats only (user rows, tag rows, chats, message rows; no
    /// files, no vectors) the driver's own bulk way: the raw side of the report's migration
    /// section, which copies the users and chats groups.
    async fn import_chats(
        &self,
        _workload: &Workload,
        _progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        Err(Error::unsupported(
            "raw baseline",
            "import of users and chats",
        ))
    }

    /// See [`crate::ops::create_chat`].
    async fn create_chat(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::CreateChat))
    }
    /// See [`crate::ops::upsert_message`].
    async fn upsert_message(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::UpsertMessage))
    }
    /// See [`crate::ops::get_chat`].
    async fn get_chat(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::GetChat))
    }
    /// See [`crate::ops::list_chats_first_page`].
    async fn list_chats_first_page(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::ListChatsFirstPage))
    }
    /// See [`crate::ops::list_chats_with_total`].
    async fn list_chats_with_total(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::ListChatsWithTotal))
    }
    /// See [`crate::ops::list_chats_deep_page`].
    async fn list_chats_deep_page(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::ListChatsDeepPage))
    }
    /// See [`crate::ops::list_by_two_tags`].
    async fn list_by_two_tags(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::ListByTwoTags))
    }
    /// See [`crate::ops::search_title`].
    async fn search_title(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::SearchTitle))
    }
    /// See [`crate::ops::add_remove_tag`].
    async fn add_remove_tag(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::AddRemoveTag))
    }
    /// See [`crate::ops::put_file`].
    async fn put_file(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::PutFile))
    }
    /// See [`crate::ops::get_file`].
    async fn get_file(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::GetFile))
    }
    /// A model operation ([`Op::List`], [`Op::Get`]): the row-store reads the typed call
    /// made, recorded before timing ([`Fixture::row_plan`]), sent the driver's way.
    async fn rows(&self, _plan: &RowPlan) -> Result<()> {
        Err(Error::unsupported("raw baseline", "rows"))
    }
    /// See [`crate::ops::vector_insert_batch`].
    async fn vector_insert_batch(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::VectorInsertBatch))
    }
    /// See [`crate::ops::vector_search`].
    async fn vector_search(&self, _fx: &Fixture, _i: u64) -> Result<()> {
        Err(unsupported(Op::VectorSearch))
    }

    /// Stores the bytes of `source` under `id` (a file of `user_id`) the raw client's way,
    /// streamed from disk: the yardstick of [`crate::streaming`] for `files.put_stream`.
    async fn upload(&self, _id: &str, _source: &Source, _user_id: &str) -> Result<()> {
        Err(Error::unsupported("raw baseline", "upload"))
    }

    /// Reads back what [`RawBaseline::upload`] stored under `id`, chunk by chunk, giving the
    /// number of bytes: the yardstick for `files.read_stream`.
    async fn download(&self, _id: &str) -> Result<u64> {
        Err(Error::unsupported("raw baseline", "download"))
    }

    /// Removes what [`RawBaseline::upload`] stored under `id` (not timed).
    async fn remove_upload(&self, _id: &str) -> Result<()> {
        Err(Error::unsupported("raw baseline", "remove_upload"))
    }
}

/// Runs iteration `i` of `op` on a baseline.
pub async fn run(baseline: &dyn RawBaseline, op: Op, fx: &Fixture, i: u64) -> Result<()> {
    match op {
        Op::CreateChat => baseline.create_chat(fx, i).await,
        Op::UpsertMessage => baseline.upsert_message(fx, i).await,
        Op::GetChat => baseline.get_chat(fx, i).await,
        Op::ListChatsFirstPage => baseline.list_chats_first_page(fx, i).await,
        Op::ListChatsWithTotal => baseline.list_chats_with_total(fx, i).await,
        Op::ListChatsDeepPage => baseline.list_chats_deep_page(fx, i).await,
        // chatstore's own keyset paging: the raw drivers have nothing to compare it with.
        Op::ListChatsDeepCursor => Err(unsupported(op)),
        Op::ListByTwoTags => baseline.list_by_two_tags(fx, i).await,
        Op::SearchTitle => baseline.search_title(fx, i).await,
        Op::AddRemoveTag => baseline.add_remove_tag(fx, i).await,
        Op::PutFile => baseline.put_file(fx, i).await,
        Op::GetFile => baseline.get_file(fx, i).await,
        Op::List(_) | Op::Get(_) => match fx.row_plan(op, i) {
            Some(plan) => baseline.rows(&plan).await,
            None => Err(Error::unsupported(
                "raw baseline",
                "an unrecorded model operation",
            )),
        },
        Op::VectorInsertBatch => baseline.vector_insert_batch(fx, i).await,
        Op::VectorSearch => baseline.vector_search(fx, i).await,
    }
}

fn unsupported(op: Op) -> Error {
    Error::unsupported("raw baseline", op.slug())
}
