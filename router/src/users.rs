//! Routed users.

use std::sync::Arc;

use async_trait::async_trait;
use chatstore_core::users::{NewUser, User, UserPatch, UserRepo};
use chatstore_core::validate::{new_id, now};
use chatstore_core::{ModelGroup, Page, PageRequest, Result};

use crate::phase::Phase;
use crate::repair::RepairKey;
use crate::router::{Shared, canon, on};

const G: ModelGroup = ModelGroup::Users;

pub(crate) struct Users(pub(crate) Arc<Shared>);

/// Fixes the id and timestamps, so both stores store the same user.
fn fixed(mut user: NewUser) -> NewUser {
    user.id.get_or_insert_with(new_id);
    user.created_at.get_or_insert_with(now);
    user
}

fn key(user: &NewUser) -> RepairKey {
    RepairKey::User(user.id.clone().unwrap_or_default())
}

#[async_trait]
impl UserRepo for Users {
    async fn create(&self, user: NewUser) -> Result<User> {
        let user = fixed(user);
        let keys = vec![key(&user)];
        self.0
            .write(
                G,
                "users.create",
                keys,
                on!(users, [user], |r| r.create(user).await),
            )
            .await
    }

    async fn create_many(&self, users: Vec<NewUser>) -> Result<Vec<User>> {
        let users: Vec<NewUser> = users.into_iter().map(fixed).collect();
        let keys = users.iter().map(key).collect();
        self.0
            .write(
                G,
                "users.create_many",
                keys,
                on!(users, [users], |r| r.create_many(users).await),
            )
            .await
    }

    async fn session_stamp(&self, id: &str) -> Result<Option<String>> {
        // Credentials stay where Open WebUI keeps them (a store without them answers
        // `Unsupported`): the old store answers in every phase but `new-only`, and no shadow
        // read compares it.
        match self.0.phase(G) {
            Phase::NewOnly => self.0.new_of(G)?.users.session_stamp(id).await,
            _ => self.0.old.users.session_stamp(id).await,
        }
    }

    async fn get(&self, id: &str) -> Result<User> {
        let id = id.to_owned();
        self.0
            .read(
                G,
                "users.get",
                vec![id.clone()],
                canon,
                on!(users, [id], |r| r.get(&id).await),
            )
            .await
    }

    async fn get_by_email(&self, email: &str) -> Result<User> {
        let email = email.to_owned();
        self.0
            .read(
                G,
                "users.get_by_email",
                vec![email.clone()],
                canon,
                on!(users, [email], |r| r.get_by_email(&email).await),
            )
            .await
    }

    async fn update(&self, id: &str, mut patch: UserPatch) -> Result<User> {
        patch.updated_at.get_or_insert_with(now);
        let id = id.to_owned();
        self.0
            .write(
                G,
                "users.update",
                vec![RepairKey::User(id.clone())],
                on!(users, [id, patch], |r| r.update(&id, patch).await),
            )
            .await
    }

    async fn set_last_active(&self, id: &str, at: i64) -> Result<()> {
        let id = id.to_owned();
        self.0
            .write(
                G,
                "users.set_last_active",
                vec![RepairKey::User(id.clone())],
                on!(users, [id, at], |r| r.set_last_active(&id, at).await),
            )
            .await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.0
            .write(
                G,
                "users.delete",
                vec![RepairKey::User(id.clone())],
                on!(users, [id], |r| r.delete(&id).await),
            )
            .await
    }

    async fn list(&self, page: PageRequest) -> Result<Page<User>> {
        self.0
            .read(
                G,
                "users.list",
                vec![format!("offset={} limit={:?}", page.offset, page.limit)],
                canon,
                on!(users, [page], |r| r.list(page).await),
            )
            .await
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
        let after = after.map(str::to_owned);
        self.0
            .read(
                G,
                "users.scan",
                vec![format!("after={after:?} limit={limit}")],
                canon,
                on!(users, [after, limit], |r| r
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
                "users.scan_ids",
                vec![format!("after={after:?} limit={limit}")],
                canon,
                on!(users, [after, limit], |r| r
                    .scan_ids(after.as_deref(), limit)
                    .await),
            )
            .await
    }
}
