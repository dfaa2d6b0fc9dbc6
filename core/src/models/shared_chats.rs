//! Shared chats (`shared_chat`): a snapshot of a chat shared by link (`/s/{id}`, the id is the
//! share token). Sharing copies the chat's title and blob (plus `share_mode`: `continue` lets
//! visitors continue the chat) and points the chat's `share_id` at the snapshot; re-sharing
//! refreshes the snapshot; unsharing deletes it and clears `share_id`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::access::AccessGrants;
use super::record::{Record, Records};
use crate::rows::tables::SHARED_CHAT;
use crate::rows::{Cond, Dir, RowStore, Table};
use crate::{ChatPatch, ChatRepo, Error, Page, PageRequest, Result};

/// A shared snapshot of a chat (`shared_chat` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedChat {
    /// The share token (uuid4).
    pub id: String,
    /// The chat it is a snapshot of.
    pub chat_id: String,
    /// Who shared it.
    pub user_id: String,
    /// The chat's title when shared.
    pub title: Option<String>,
    /// The chat's blob when shared, with `share_mode`.
    pub chat: Option<Value>,
    /// Shared (epoch seconds).
    pub created_at: Option<i64>,
    /// Refreshed (epoch seconds).
    pub updated_at: Option<i64>,
}

impl Record for SharedChat {
    const TABLE: &'static Table = &SHARED_CHAT;
    const ENTITY: &'static str = "shared chat";
    fn id(&self) -> &str {
        &self.id
    }
}

/// The sort of a user's shared chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SharedChatOrder {
    /// Last refreshed first (the default).
    #[default]
    UpdatedDesc,
    /// Newest share first.
    CreatedDesc,
    /// By title.
    TitleAsc,
}

/// Shared chats. See the [module docs](self).
#[derive(Clone)]
pub struct SharedChats {
    shared: Records<SharedChat>,
    chats: Arc<dyn ChatRepo>,
}

impl SharedChats {
    pub(crate) fn new(rows: Arc<dyn RowStore>, chats: Arc<dyn ChatRepo>) -> Self {
        SharedChats {
            shared: Records::new(rows),
            chats,
        }
    }

    /// The shared chat records (generic reads: scan for export, custom filters).
    pub fn records(&self) -> &Records<SharedChat> {
        &self.shared
    }

    fn snapshot(chat: &crate::Chat, share_mode: Option<&str>) -> Value {
        let mut blob = match &chat.chat {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        blob.insert(
            "share_mode".into(),
            share_mode.map_or(Value::Null, Value::from),
        );
        Value::Object(blob)
    }

    /// Shares a chat by its owner: a snapshot with a new token, which becomes the chat's
    /// `share_id`. `NotFound` when the chat is not `user_id`'s.
    pub async fn share(
        &self,
        chat_id: &str,
        user_id: &str,
        share_mode: Option<&str>,
    ) -> Result<SharedChat> {
        let chat = self.chats.get(chat_id).await?;
        if chat.user_id != user_id {
            return Err(Error::not_found("chat", chat_id));
        }
        let now = SHARED_CHAT.time_unit.now();
        let shared = self
            .shared
            .insert(SharedChat {
                id: crate::validate::new_id(),
                chat_id: chat_id.to_owned(),
                user_id: user_id.to_owned(),
                title: Some(chat.title.clone()),
                chat: Some(Self::snapshot(&chat, share_mode)),
                created_at: Some(now),
                updated_at: Some(now),
            })
            .await?;
        self.chats
            .update(
                chat_id,
                ChatPatch {
                    share_id: Some(Some(shared.id.clone())),
                    updated_at: Some(chat.updated_at),
                    ..ChatPatch::default()
                },
            )
            .await?;
        Ok(shared)
    }

    /// Refreshes a snapshot from the chat as it is now (keeping its `share_mode`).
    pub async fn refresh(&self, share_id: &str) -> Result<SharedChat> {
        let mut shared = self.shared.get(share_id).await?;
        let chat = self.chats.get(&shared.chat_id).await?;
        let mode = shared
            .chat
            .as_ref()
            .and_then(|c| c.get("share_mode"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        shared.title = Some(chat.title.clone());
        shared.chat = Some(Self::snapshot(&chat, mode.as_deref()));
        shared.updated_at = Some(SHARED_CHAT.time_unit.now());
        self.shared.replace(shared).await
    }

    /// The snapshot with this token.
    pub async fn get(&self, share_id: &str) -> Result<SharedChat> {
        self.shared.get(share_id).await
    }

    /// The latest snapshot of a chat, if it is shared.
    pub async fn of_chat(&self, chat_id: &str) -> Result<Option<SharedChat>> {
        Ok(self
            .shared
            .list(
                vec![Cond::Eq("chat_id", chat_id.into())],
                &[("updated_at", Dir::Desc)],
            )
            .await?
            .into_iter()
            .next())
    }

    /// A user's shared chats, one page, optionally those whose title contains `text` (ASCII
    /// case ignored).
    pub async fn for_user(
        &self,
        user_id: &str,
        text: Option<&str>,
        order: SharedChatOrder,
        page: PageRequest,
    ) -> Result<Page<SharedChat>> {
        let mut filter = vec![Cond::Eq("user_id", user_id.into())];
        if let Some(text) = text {
            crate::validate::text("search text", text)?;
            filter.push(Cond::ContainsCi("title", text.to_owned()));
        }
        let sort = match order {
            SharedChatOrder::UpdatedDesc => ("updated_at", Dir::Desc),
            SharedChatOrder::CreatedDesc => ("created_at", Dir::Desc),
            SharedChatOrder::TitleAsc => ("title", Dir::Asc),
        };
        self.shared.page(filter, &[sort], page).await
    }

    /// Unshares a chat: deletes its snapshots (and their grants) and clears its `share_id`.
    pub async fn unshare(&self, chat_id: &str) -> Result<()> {
        let chat = self.chats.get(chat_id).await?;
        let ids: Vec<String> = self
            .shared
            .list(vec![Cond::Eq("chat_id", chat_id.into())], &[])
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        if !ids.is_empty() {
            self.shared
                .write(vec![
                    AccessGrants::delete_ops("shared_chat", &ids),
                    Records::<SharedChat>::delete_op(vec![Cond::Eq("chat_id", chat_id.into())]),
                ])
                .await?;
        }
        if chat.share_id.is_some() {
            self.chats
                .update(
                    chat_id,
                    ChatPatch {
                        share_id: Some(None),
                        updated_at: Some(chat.updated_at),
                        ..ChatPatch::default()
                    },
                )
                .await?;
        }
        Ok(())
    }
}
