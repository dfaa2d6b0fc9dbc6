//! Routed tags (group `chats`).

use std::sync::Arc;

use async_trait::async_trait;
use chatstore_core::tags::{Tag, TagKey, TagRepo, TagUsage};
use chatstore_core::{ModelGroup, Result};

use crate::repair::RepairKey;
use crate::router::{Shared, canon, on};

const G: ModelGroup = ModelGroup::Chats;

pub(crate) struct Tags(pub(crate) Arc<Shared>);

#[async_trait]
impl TagRepo for Tags {
    async fn list(&self, user_id: &str) -> Result<Vec<Tag>> {
        let user = user_id.to_owned();
        self.0
            .read(
                G,
                "tags.list",
                vec![user.clone()],
                canon,
                on!(tags, [user], |r| r.list(&user).await),
            )
            .await
    }

    async fn usage(&self, user_id: &str) -> Result<Vec<TagUsage>> {
        let user = user_id.to_owned();
        self.0
            .read(
                G,
                "tags.usage",
                vec![user.clone()],
                canon,
                on!(tags, [user], |r| r.usage(&user).await),
            )
            .await
    }

    async fn get(&self, user_id: &str, name_or_id: &str) -> Result<Tag> {
        let user = user_id.to_owned();
        let name = name_or_id.to_owned();
        self.0
            .read(
                G,
                "tags.get",
                vec![user.clone(), name.clone()],
                canon,
                on!(tags, [user, name], |r| r.get(&user, &name).await),
            )
            .await
    }

    async fn ensure(&self, user_id: &str, name: &str) -> Result<Tag> {
        let user = user_id.to_owned();
        let name = name.to_owned();
        let _tags = self.0.tag_writes().await;
        self.0
            .write(
                G,
                "tags.ensure",
                vec![RepairKey::Tags(user.clone())],
                on!(tags, [user, name], |r| r.ensure(&user, &name).await),
            )
            .await
    }

    async fn create_many(&self, tags: Vec<Tag>) -> Result<()> {
        let mut users: Vec<String> = tags.iter().map(|t| t.user_id.clone()).collect();
        users.sort();
        users.dedup();
        let keys = users.into_iter().map(RepairKey::Tags).collect();
        let _tags = self.0.tag_writes().await;
        self.0
            .write(
                G,
                "tags.create_many",
                keys,
                on!(tags, [tags], |r| r.create_many(tags).await),
            )
            .await
    }

    async fn delete(&self, user_id: &str, name_or_id: &str) -> Result<()> {
        let user = user_id.to_owned();
        let name = name_or_id.to_owned();
        // Deleting a tag also takes it off the user's chats: repaired by re-copying them.
        let _tags = self.0.tag_delete().await;
        self.0
            .write(
                G,
                "tags.delete",
                vec![RepairKey::ChatsOf(user.clone())],
                on!(tags, [user, name], |r| r.delete(&user, &name).await),
            )
            .await
    }

    async fn scan(&self, after: Option<&TagKey>, limit: u32) -> Result<Vec<Tag>> {
        let after = after.cloned();
        self.0
            .read(
                G,
                "tags.scan",
                vec![format!("after={after:?} limit={limit}")],
                canon,
                on!(tags, [after, limit], |r| r
                    .scan(after.as_ref(), limit)
                    .await),
            )
            .await
    }
}
