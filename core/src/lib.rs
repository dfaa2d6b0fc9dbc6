//! # chatstore-core
//!
//! The core of chatstore, the storage layer of an Open WebUI-style chat application: domain
//! types shaped after Open WebUI 0.12.4, one object-safe async repository trait per aggregate
//! ([`UserRepo`], [`ChatRepo`], [`MessageRepo`], [`TagRepo`], [`FileRepo`], [`VectorRepo`]),
//! the one [`Error`] type, [`Capabilities`], the [`Store`] that bundles the repositories, and
//! the [`memory`] backend: the reference model every other backend is compared with.
//!
//! Validation, defaults and the chat blob's message mirror live here, in plain functions that
//! every backend calls, so that the same input is refused or stored the same way everywhere.
//!
//! ```
//! use chatstore_core::{memory, ChatQuery, NewChat, NewMessage, NewUser};
//!
//! # tokio_test_block(async {
//! let store = memory::store();
//! let user = store.users.create(NewUser::new("ada@example.com", "Ada")).await?;
//! let chat = store
//!     .chats
//!     .create(NewChat::new(&user.id, "Engines").with_tags(["Work", "math"]))
//!     .await?;
//! store
//!     .messages
//!     .upsert(NewMessage::text(&chat.id, "m1", "user", "Hello"))
//!     .await?;
//! let page = store.chats.list(&ChatQuery::for_user(&user.id).with_tags(["work"])).await?;
//! assert_eq!(page.total, 1);
//! let chat = store.chats.get(&chat.id).await?;
//! assert_eq!(chat.chat["history"]["currentId"], "m1");
//! # Ok::<(), chatstore_core::Error>(())
//! # });
//! # fn tokio_test_block<F: std::future::Future<Output = Result<(), chatstore_core::Error>>>(f: F) {
//! #     tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f).expect("example");
//! # }
//! ```

pub mod blob;
pub mod capabilities;
pub mod changes;
pub mod chats;
pub mod compare;
pub mod config;
pub mod error;
pub mod files;
pub mod groups;
pub mod layer;
pub mod layers;
pub mod memory;
pub mod messages;
pub mod models;
pub mod pool_budget;
pub mod query;
pub mod redact;
pub mod rows;
pub mod signing;
pub mod sqlstate;
pub mod store;
pub mod tags;
pub mod transfer;
pub mod unsupported;
pub mod users;
pub mod validate;
pub mod vectors;

pub use capabilities::Capabilities;
pub use changes::{ChangeEvent, ChangeFeed, ChangeFilter, ChangeKind};
pub use chats::{Chat, ChatPatch, ChatRepo, ChatSummary, NewChat};
pub use config::Config;
pub use error::{BoxError, Error, ErrorKind, Result};
pub use files::{FileMeta, FileRepo, NewFile};
pub use groups::{ModelGroup, parse_groups};
pub use layer::Layer;
pub use messages::{Message, MessageRepo, NewMessage};
pub use query::{
    ChatCursor, ChatOrder, ChatQuery, FileQuery, FolderFilter, Page, PageRequest, TagFilter,
};
pub use rows::{Row, RowOp, RowQuery, RowStore};
pub use signing::{LocalUrls, SignedUrl, UrlSigner};
pub use store::{Store, StoreParts};
pub use tags::{Tag, TagKey, TagRepo, TagUsage, tag_id};
pub use transfer::{ByteRange, ByteStream, FileStream};
pub use users::{NewUser, User, UserPatch, UserRepo};
pub use vectors::{SearchHit, VectorFilter, VectorItem, VectorRepo};
