//! The operations of the `POST /api/chatstore/tx` route (`pb_hooks/chatstore.pb.js`), one
//! typed enum mirrored by the route's `switch (op.op)`: every variant here is a `case` there,
//! with the same field names. The adapter and the raw HTTP baseline build their operation
//! lists from it, never from loose JSON.

use chatstore_core::rows::cascades::Cascade;
use serde::Serialize;
use serde_json::Value;

use crate::schema::Collections;

/// One operation of a `tx` request; the list runs in one PocketBase transaction, all or
/// nothing. `collection` is always the collection the operation writes; `entity` names the
/// record kind in error messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TxOp {
    /// Fails the transaction with 412 unless record `id` has `version` (optimistic check).
    ExpectVersion {
        /// The collection of the record.
        collection: String,
        /// The record kind, for messages.
        entity: &'static str,
        /// The record id.
        id: String,
        /// The version the caller read.
        version: i64,
    },
    /// Creates record `id`; 409 when it exists.
    Create {
        /// The collection.
        collection: String,
        /// The record kind.
        entity: &'static str,
        /// The record id.
        id: String,
        /// The record's fields.
        fields: Value,
    },
    /// Creates record `id` unless it exists (then leaves it as it is).
    Ensure {
        /// The collection.
        collection: String,
        /// The record kind.
        entity: &'static str,
        /// The record id.
        id: String,
        /// The record's fields.
        fields: Value,
    },
    /// Creates record `id` or sets these fields on it.
    Upsert {
        /// The collection.
        collection: String,
        /// The record kind.
        entity: &'static str,
        /// The record id.
        id: String,
        /// The fields to write.
        fields: Value,
    },
    /// Sets these fields on record `id`; 404 when it is missing.
    Update {
        /// The collection.
        collection: String,
        /// The record kind.
        entity: &'static str,
        /// The record id.
        id: String,
        /// The fields to write.
        fields: Value,
        /// Answer the record as stored instead of `true`.
        #[serde(rename = "return")]
        return_record: bool,
    },
    /// Deletes record `id` (404 when `must_exist` and it is missing).
    Delete {
        /// The collection.
        collection: String,
        /// The record kind.
        entity: &'static str,
        /// The record id.
        id: String,
        /// Whether a missing record fails the transaction.
        must_exist: bool,
    },
    /// Deletes every record whose `field` equals `value`, and the records `cascades` ties to
    /// each; answers how many it deleted (cascaded ones not counted).
    DeleteWhere {
        /// The collection.
        collection: String,
        /// The field compared (a plain field name).
        field: &'static str,
        /// The value.
        value: String,
        /// What goes with each deleted record (files: their links).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        cascades: Vec<Cascaded>,
    },
    /// Fails with 409 (and `message`) when a record other than `except` has `field` = `value`.
    Unique {
        /// The collection.
        collection: String,
        /// The record kind.
        entity: &'static str,
        /// The field (a plain field name).
        field: &'static str,
        /// The value that must be free.
        value: String,
        /// The record allowed to hold it.
        except: String,
        /// The conflict message.
        message: String,
    },
    /// Deletes those of the tag records `ids` that no chat of their user carries any more.
    DropOrphanTags {
        /// The tags collection.
        collection: String,
        /// The chats collection.
        chats: String,
        /// Tag record ids.
        ids: Vec<String>,
    },
    /// Deletes every chat of `user_id` with its messages and the records `cascades` ties to
    /// it, then the user's tags.
    DeleteUserChats {
        /// The chats collection.
        collection: String,
        /// The messages collection.
        messages: String,
        /// The tags collection.
        tags: String,
        /// The user.
        user_id: String,
        /// What goes with each chat (its shares and file links).
        cascades: Vec<Cascaded>,
    },
    /// Takes tag record `id` out of every chat of its user (bumping their versions), then
    /// deletes it; 404 when it is missing.
    DeleteTag {
        /// The tags collection.
        collection: String,
        /// The chats collection.
        chats: String,
        /// The record kind.
        entity: &'static str,
        /// The tag record id.
        id: String,
    },
    /// Upserts messages of chat `chat_id` and their entries in its blob, as core's
    /// `blob::upsert_message` does, reading and writing the chat in this one transaction;
    /// answers each message's `created_at` and author as stored. 404 when the chat is missing.
    UpsertMessages {
        /// The chats collection.
        collection: String,
        /// The record kind (`chat`, for a missing chat).
        entity: &'static str,
        /// The messages collection.
        messages: String,
        /// The chat.
        chat_id: String,
        /// The messages, in order.
        items: Vec<MessageWrite>,
        /// The entry keys core models (`blob::MESSAGE_KEYS`): a replaced entry keeps its other
        /// keys, the client's own.
        modelled: &'static [&'static str],
    },
}

/// Records that go with a deleted chat or file: those of the row collection `collection`
/// whose `field` holds its id. Made from core's list ([`Cascaded::of`]), so PocketBase deletes
/// exactly what SQL's `ON DELETE CASCADE` deletes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cascaded {
    /// The row collection (`owui_rows_<table>`, prefixed).
    pub collection: String,
    /// The field referring to the deleted record (a plain field name).
    pub field: &'static str,
}

impl Cascaded {
    /// The collections and fields of core's `cascades` ([`chatstore_core::rows::cascades`]).
    pub fn of(cols: &Collections, cascades: &[Cascade]) -> Vec<Cascaded> {
        cascades
            .iter()
            .map(|c| Cascaded {
                collection: cols.rows(c.table),
                field: c.column,
            })
            .collect()
    }

    /// The ops deleting what `cascades` ties to the one record `id`, for a transaction that
    /// deletes it.
    pub fn delete_ops(cols: &Collections, cascades: &[Cascade], id: &str) -> Vec<TxOp> {
        Cascaded::of(cols, cascades)
            .into_iter()
            .map(|c| TxOp::DeleteWhere {
                collection: c.collection,
                field: c.field,
                value: id.to_owned(),
                cascades: Vec::new(),
            })
            .collect()
    }
}

/// One message of [`TxOp::UpsertMessages`], prepared by core's rules for everything the
/// adapter can decide without reading the chat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageWrite {
    /// The message id within the chat.
    pub id: String,
    /// The message's record id.
    pub record: String,
    /// The parent message id.
    pub parent_id: Option<String>,
    /// The message as stored (`doc`), JSON text; the route sets `created_at` (and `user_id`
    /// when `owner_is_author`).
    pub doc: String,
    /// The message's entry in `history.messages` (`blob::message_json`), JSON text; the route
    /// sets `childrenIds`, `timestamp` (and `user_id` when `owner_is_author`).
    pub entry: String,
    /// Created, when the stored message's is not kept.
    pub created_at: i64,
    /// Updated; raises the chat's `updated_at`.
    pub updated_at: i64,
    /// No `created_at` was given: a stored message with this id keeps its own.
    pub keep_created_at: bool,
    /// No author was given: the chat's owner is the author.
    pub owner_is_author: bool,
}

/// The body of a `tx` request.
#[derive(Debug, Serialize)]
pub struct TxRequest<'a> {
    /// The operations, in order.
    pub ops: &'a [TxOp],
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant's `op` name has its `case` in the route, so the two cannot drift apart.
    #[test]
    fn every_op_has_its_case_in_the_route() {
        let hooks = include_str!("../pb_hooks/chatstore.pb.js");
        let s = |v: &str| v.to_owned();
        let item = MessageWrite {
            id: s("m"),
            record: s("r"),
            parent_id: None,
            doc: s("{}"),
            entry: s("{}"),
            created_at: 1,
            updated_at: 1,
            keep_created_at: true,
            owner_is_author: true,
        };
        let cascaded = Cascaded {
            collection: s("r"),
            field: "chat_id",
        };
        let all = [
            TxOp::ExpectVersion {
                collection: s("c"),
                entity: "chat",
                id: s("i"),
                version: 1,
            },
            TxOp::Create {
                collection: s("c"),
                entity: "chat",
                id: s("i"),
                fields: Value::Null,
            },
            TxOp::Ensure {
                collection: s("c"),
                entity: "tag",
                id: s("i"),
                fields: Value::Null,
            },
            TxOp::Upsert {
                collection: s("c"),
                entity: "message",
                id: s("i"),
                fields: Value::Null,
            },
            TxOp::Update {
                collection: s("c"),
                entity: "chat",
                id: s("i"),
                fields: Value::Null,
                return_record: true,
            },
            TxOp::Delete {
                collection: s("c"),
                entity: "chat",
                id: s("i"),
                must_exist: true,
            },
            TxOp::DeleteWhere {
                collection: s("c"),
                field: "chat_id",
                value: s("v"),
                cascades: vec![cascaded.clone()],
            },
            TxOp::Unique {
                collection: s("c"),
                entity: "chat",
                field: "share_id",
                value: s("v"),
                except: s("i"),
                message: s("m"),
            },
            TxOp::DropOrphanTags {
                collection: s("t"),
                chats: s("c"),
                ids: vec![],
            },
            TxOp::DeleteUserChats {
                collection: s("c"),
                messages: s("m"),
                tags: s("t"),
                user_id: s("u"),
                cascades: vec![cascaded.clone()],
            },
            TxOp::DeleteTag {
                collection: s("t"),
                chats: s("c"),
                entity: "tag",
                id: s("i"),
            },
            TxOp::UpsertMessages {
                collection: s("c"),
                entity: "chat",
                messages: s("m"),
                chat_id: s("i"),
                items: vec![item.clone()],
                modelled: &chatstore_core::blob::MESSAGE_KEYS,
            },
        ];
        let cascaded_json = serde_json::to_value(&cascaded).expect("serialise");
        for key in cascaded_json.as_object().expect("object").keys() {
            assert!(
                hooks.contains(&format!("c.{key}")),
                "the cascades of a delete are never read for {key}"
            );
        }
        let item_json = serde_json::to_value(&item).expect("serialise");
        for key in item_json.as_object().expect("object").keys() {
            assert!(
                hooks.contains(&format!("it.{key}")),
                "the upsert_messages case never reads {key} of a message"
            );
        }
        for op in all {
            let json = serde_json::to_value(&op).expect("serialise");
            let name = json["op"].as_str().expect("op name");
            assert!(
                hooks.contains(&format!("case \"{name}\":")),
                "the tx route has no case for {name}"
            );
            for key in json.as_object().expect("object").keys() {
                assert!(
                    key == "op"
                        || hooks.contains(&format!("op.{key}"))
                        || hooks.contains(&format!("op[\"{key}\"]")),
                    "the tx route never reads {key} of {name}"
                );
            }
        }
    }
}
