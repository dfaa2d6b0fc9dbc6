//! Users in the `owui_users` collection. Emails are unique case-insensitively through the
//! unique index on `email_key` (the email in lower case, Unicode-aware like the memory model).

use async_trait::async_trait;
use chatstore_core::{
    Error, NewUser, Page, PageRequest, Result, User, UserPatch, UserRepo, validate,
};
use serde_json::{Value, json};

use crate::PocketBase;
use crate::client::ListQuery;
use crate::error::Subject;
use crate::tx::TxOp;
use crate::{filter, record};

fn fields(user: &User) -> Value {
    json!({
        "email": user.email,
        "email_key": user.email.to_lowercase(),
        "name": user.name,
        "role": user.role,
        "profile_image_url": user.profile_image_url,
        "info": user.info.as_ref().map(record::json_value),
        "settings": user.settings.as_ref().map(record::json_value),
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "last_active_at": user.last_active_at,
    })
}

fn with_id(user: &User) -> Value {
    let mut body = fields(user);
    body["id"] = json!(user.id);
    body
}

fn from_record(r: &Value) -> Result<User> {
    Ok(User {
        id: record::text(r, "id")?,
        email: record::text(r, "email")?,
        name: record::text(r, "name")?,
        role: record::text(r, "role")?,
        profile_image_url: record::text(r, "profile_image_url")?,
        info: record::json(r, "info"),
        settings: record::json(r, "settings"),
        created_at: record::int(r, "created_at")?,
        updated_at: record::int(r, "updated_at")?,
        last_active_at: record::int(r, "last_active_at")?,
    })
}

#[async_trait]
impl UserRepo for PocketBase {
    async fn session_stamp(&self, _id: &str) -> Result<Option<String>> {
        // Credentials (Open WebUI's `auth` table) are not moved to PocketBase.
        Err(Error::unsupported("pocketbase", "users.session_stamp"))
    }

    async fn create(&self, user: NewUser) -> Result<User> {
        let user = user.into_user(validate::now())?;
        self.client()
            .create_record(
                &self.cols().users,
                &with_id(&user),
                Subject::new("user", &user.id),
            )
            .await?;
        Ok(user)
    }

    async fn create_many(&self, users: Vec<NewUser>) -> Result<Vec<User>> {
        let now = validate::now();
        let users = users
            .into_iter()
            .map(|u| u.into_user(now))
            .collect::<Result<Vec<_>>>()?;
        let bodies = users.iter().map(with_id).collect();
        self.client()
            .create_all(&self.cols().users, bodies, Subject::new("user", ""))
            .await?;
        Ok(users)
    }

    async fn get(&self, id: &str) -> Result<User> {
        let r = self
            .client()
            .get_record(&self.cols().users, id, None, Subject::new("user", id))
            .await?;
        from_record(&r)
    }

    async fn get_by_email(&self, email: &str) -> Result<User> {
        let q = ListQuery {
            filter: filter::eq("email_key", &email.to_lowercase()),
            skip_total: true,
            ..ListQuery::default()
        };
        let (items, _) = self
            .client()
            .list(
                &self.cols().users,
                &q,
                0,
                Some(1),
                Subject::new("user", email),
            )
            .await?;
        match items.first() {
            Some(r) => from_record(r),
            None => Err(chatstore_core::Error::not_found("user", email)),
        }
    }

    async fn update(&self, id: &str, patch: UserPatch) -> Result<User> {
        let mut user = UserRepo::get(self, id).await?;
        patch.apply(&mut user, validate::now())?;
        // Only the fields the patch sets are written, read and written inside one transaction
        // of the tx route: concurrent patches of different fields both land. (A PATCH of the
        // records API would not do: PocketBase reads the record, then saves every column.)
        let all = fields(&user);
        let mut body = serde_json::Map::new();
        let mut send = |key: &str| {
            body.insert(key.to_owned(), all[key].clone());
        };
        if patch.email.is_some() {
            send("email");
            send("email_key");
        }
        for (set, key) in [
            (patch.name.is_some(), "name"),
            (patch.role.is_some(), "role"),
            (patch.profile_image_url.is_some(), "profile_image_url"),
            (patch.info.is_some(), "info"),
            (patch.settings.is_some(), "settings"),
            (true, "updated_at"),
        ] {
            if set {
                send(key);
            }
        }
        let ops = vec![TxOp::Update {
            collection: self.cols().users.clone(),
            entity: "user",
            id: id.to_owned(),
            fields: Value::Object(body),
            return_record: true,
        }];
        let answer = self.client().tx(ops, Subject::new("user", id)).await?;
        let stored = answer
            .get("results")
            .and_then(|r| r.get(0))
            .ok_or_else(|| crate::error::malformed("tx answer without the updated user"))?;
        from_record(stored)
    }

    async fn set_last_active(&self, id: &str, at: i64) -> Result<()> {
        // The one field, written inside the tx route: a PATCH of the records API would read
        // the record and save every column, undoing a concurrent update of another field.
        let ops = vec![TxOp::Update {
            collection: self.cols().users.clone(),
            entity: "user",
            id: id.to_owned(),
            fields: json!({ "last_active_at": at }),
            return_record: false,
        }];
        self.client()
            .tx(ops, Subject::new("user", id))
            .await
            .map(drop)
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.client()
            .delete_record(&self.cols().users, id, Subject::new("user", id))
            .await
    }

    async fn list(&self, page: PageRequest) -> Result<Page<User>> {
        let q = ListQuery {
            sort: "-created_at,id".to_owned(),
            ..ListQuery::default()
        };
        let (items, total) = self
            .client()
            .list(
                &self.cols().users,
                &q,
                page.offset,
                page.limit,
                Subject::new("user", ""),
            )
            .await?;
        Ok(Page {
            items: items.iter().map(from_record).collect::<Result<_>>()?,
            total,
        })
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
        let items = self
            .client()
            .scan_by_id(
                &self.cols().users,
                after,
                limit,
                None,
                Subject::new("user", ""),
            )
            .await?;
        items.iter().map(from_record).collect()
    }

    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        self.client()
            .scan_ids_by_id(&self.cols().users, after, limit, Subject::new("user", ""))
            .await
    }
}
