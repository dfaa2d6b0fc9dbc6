//! Routed chats (group `chats`).

use std::sync::Arc;

use async_trait::async_trait;
use chatstore_core::chats::{Chat, ChatPatch, ChatRepo, ChatSummary, NewChat};
use chatstore_core::validate::{new_id, now};
use chatstore_core::{ChatQuery, ModelGroup, Page, Result};

use crate::repair::RepairKey;
use crate::router::{Shared, canon, on};

const G: ModelGroup = ModelGroup::Chats;

pub(crate) struct Chats(pub(crate) Arc<Shared>);

/// Fixes the id and timestamps (message timestamps default to the chat's `created_at`), so
/// both stores store the same chat.
fn fixed(mut chat: NewChat) -> NewChat {
    chat.id.get_or_insert_with(new_id);
    chat.created_at.get_or_insert_with(now);
    chat
}

fn key(chat: &NewChat) -> RepairKey {
    RepairKey::Chat(chat.id.clone().unwrap_or_default())
}

#[async_trait]
impl ChatRepo for Chats {
    async fn create(&self, chat: NewChat) -> Result<Chat> {
        let chat = fixed(chat);
        let keys = vec![key(&chat)];
        let _tags = if chat.tags.is_empty() {
            None
        } else {
            Some(self.0.tag_writes().await)
        };
        self.0
            .write(
                G,
                "chats.create",
                keys,
                on!(chats, [chat], |r| r.create(chat).await),
            )
            .await
    }

    async fn create_many(&self, chats: Vec<NewChat>) -> Result<Vec<Chat>> {
        let chats: Vec<NewChat> = chats.into_iter().map(fixed).collect();
        let keys = chats.iter().map(key).collect();
        let _tags = if chats.iter().all(|c| c.tags.is_empty()) {
            None
        } else {
            Some(self.0.tag_writes().await)
        };
        self.0
            .write(
                G,
                "chats.create_many",
                keys,
                on!(chats, [chats], |r| r.create_many(chats).await),
            )
            .await
    }

    async fn get(&self, id: &str) -> Result<Chat> {
        let id = id.to_owned();
        self.0
            .read(
                G,
                "chats.get",
                vec![id.clone()],
                canon,
                on!(chats, [id], |r| r.get(&id).await),
            )
            .await
    }

    async fn update(&self, id: &str, mut patch: ChatPatch) -> Result<Chat> {
        patch.updated_at.get_or_insert_with(now);
        let id = id.to_owned();
        self.0
            .write(
                G,
                "chats.update",
                vec![RepairKey::Chat(id.clone())],
                on!(chats, [id, patch], |r| r.update(&id, patch).await),
            )
            .await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        // Deletes the tag rows no other chat of the owner carries: a tag delete.
        let _tags = self.0.tag_delete().await;
        self.0
            .write(
                G,
                "chats.delete",
                vec![RepairKey::Chat(id.clone())],
                on!(chats, [id], |r| r.delete(&id).await),
            )
            .await
    }

    async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        let user = user_id.to_owned();
        // Deletes the user's tag rows with the chats: a tag delete.
        let _tags = self.0.tag_delete().await;
        self.0
            .write(
                G,
                "chats.delete_for_user",
                vec![RepairKey::ChatsOf(user.clone())],
                on!(chats, [user], |r| r.delete_for_user(&user).await),
            )
            .await
    }

    async fn list(&self, query: &ChatQuery) -> Result<Page<ChatSummary>> {
        let query = query.clone();
        let ids = vec![serde_json::to_string(&query).unwrap_or_default()];
        self.0
            .read(
                G,
                "chats.list",
                ids,
                canon,
                on!(chats, [query], |r| r.list(&query).await),
            )
            .await
    }

    async fn list_items(&self, query: &ChatQuery) -> Result<Vec<ChatSummary>> {
        let query = query.clone();
        let ids = vec![serde_json::to_string(&query).unwrap_or_default()];
        self.0
            .read(
                G,
                "chats.list_items",
                ids,
                canon,
                on!(chats, [query], |r| r.list_items(&query).await),
            )
            .await
    }

    async fn set_tags(&self, id: &str, names: &[String]) -> Result<Chat> {
        let id = id.to_owned();
        let names = names.to_vec();
        // Makes tag rows and deletes those no chat carries any more: a tag delete.
        let _tags = self.0.tag_delete().await;
        self.0
            .write(
                G,
                "chats.set_tags",
                vec![RepairKey::Chat(id.clone())],
                on!(chats, [id, names], |r| r.set_tags(&id, &names).await),
            )
            .await
    }

    async fn add_tag(&self, id: &str, name: &str) -> Result<Chat> {
        let id = id.to_owned();
        let name = name.to_owned();
        let _tags = self.0.tag_writes().await;
        self.0
            .write(
                G,
                "chats.add_tag",
                vec![RepairKey::Chat(id.clone())],
                on!(chats, [id, name], |r| r.add_tag(&id, &name).await),
            )
            .await
    }

    async fn remove_tag(&self, id: &str, name_or_id: &str) -> Result<Chat> {
        let id = id.to_owned();
        let name = name_or_id.to_owned();
        // Deletes the tag row when no other chat of the owner carries it: a tag delete.
        let _tags = self.0.tag_delete().await;
        self.0
            .write(
                G,
                "chats.remove_tag",
                vec![RepairKey::Chat(id.clone())],
                on!(chats, [id, name], |r| r.remove_tag(&id, &name).await),
            )
            .await
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Chat>> {
        let after = after.map(str::to_owned);
        self.0
            .read(
                G,
                "chats.scan",
                vec![format!("after={after:?} limit={limit}")],
                canon,
                on!(chats, [after, limit], |r| r
                    .scan(after.as_deref(), limit)
                    .await),
            )
            .await
    }

    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        let after = after.map(str::to_owned);
        self.0
            .read(
                G,
                "chats.scan_ids",
                vec![format!("after={after:?} limit={limit}")],
                canon,
                on!(chats, [after, limit], |r| r
                    .scan_ids(after.as_deref(), limit)
                    .await),
            )
            .await
    }
}
