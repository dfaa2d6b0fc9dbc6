//! Users: the `user` table of Open WebUI.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::query::{Page, PageRequest};
use crate::{Result, validate};

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Id (Open WebUI: uuid4).
    pub id: String,
    /// Email address as given; unique case-insensitively.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `pending`, `user` or `admin`.
    pub role: String,
    /// Avatar URL.
    pub profile_image_url: String,
    /// Free-form profile data; `None` when unset.
    pub info: Option<Value>,
    /// UI settings; `None` when unset.
    pub settings: Option<Value>,
    /// Created, epoch seconds.
    pub created_at: i64,
    /// Last updated, epoch seconds.
    pub updated_at: i64,
    /// Last seen, epoch seconds.
    pub last_active_at: i64,
}

/// The roles Open WebUI knows.
pub const ROLES: [&str; 3] = ["pending", "user", "admin"];

/// A user to create. The id and timestamps are kept when given and generated when absent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NewUser {
    /// Id to keep; a uuid4 when `None`.
    pub id: Option<String>,
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role; `pending` when `None`.
    pub role: Option<String>,
    /// Avatar URL; `/user.png` when `None`.
    pub profile_image_url: Option<String>,
    /// Profile data.
    pub info: Option<Value>,
    /// Settings.
    pub settings: Option<Value>,
    /// Created; now when `None`.
    pub created_at: Option<i64>,
    /// Updated; `created_at` when `None`.
    pub updated_at: Option<i64>,
    /// Last seen; `updated_at` when `None` (a migration keeps the source's).
    #[serde(default)]
    pub last_active_at: Option<i64>,
}

/// The input that creates this user again elsewhere with every field kept (id and timestamps
/// included): how a migration or a repair copies a user into another store.
impl From<&User> for NewUser {
    fn from(u: &User) -> Self {
        NewUser {
            id: Some(u.id.clone()),
            email: u.email.clone(),
            name: u.name.clone(),
            role: Some(u.role.clone()),
            profile_image_url: Some(u.profile_image_url.clone()),
            info: u.info.clone(),
            settings: u.settings.clone(),
            created_at: Some(u.created_at),
            updated_at: Some(u.updated_at),
            last_active_at: Some(u.last_active_at),
        }
    }
}

impl NewUser {
    /// A user with this email and name, everything else defaulted.
    pub fn new(email: impl Into<String>, name: impl Into<String>) -> Self {
        NewUser {
            email: email.into(),
            name: name.into(),
            ..NewUser::default()
        }
    }

    /// Keep this id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Validates the input and fills in the defaults, giving the user to store.
    pub fn into_user(self, now: i64) -> Result<User> {
        let id = self.id.unwrap_or_else(validate::new_id);
        validate::id("user id", &id)?;
        validate::email(&self.email)?;
        validate::text("user name", &self.name)?;
        let role = self.role.unwrap_or_else(|| "pending".to_owned());
        check_role(&role)?;
        let profile_image_url = self
            .profile_image_url
            .unwrap_or_else(|| "/user.png".to_owned());
        validate::text("profile_image_url", &profile_image_url)?;
        for (what, v) in [("info", &self.info), ("settings", &self.settings)] {
            if let Some(v) = v {
                validate::object(what, v)?;
            }
        }
        let created_at = self.created_at.unwrap_or(now);
        validate::timestamp("created_at", created_at)?;
        let updated_at = self.updated_at.unwrap_or(created_at);
        validate::timestamp("updated_at", updated_at)?;
        let last_active_at = self.last_active_at.unwrap_or(updated_at);
        validate::timestamp("last_active_at", last_active_at)?;
        Ok(User {
            id,
            email: self.email,
            name: self.name,
            role,
            profile_image_url,
            info: self.info,
            settings: self.settings,
            created_at,
            updated_at,
            last_active_at,
        })
    }
}

fn check_role(role: &str) -> Result<()> {
    if !ROLES.contains(&role) {
        return Err(crate::Error::invalid(format!(
            "role {role:?} is not one of {ROLES:?}"
        )));
    }
    Ok(())
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserPatch {
    /// New email.
    pub email: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New role.
    pub role: Option<String>,
    /// New avatar URL.
    pub profile_image_url: Option<String>,
    /// New profile data (replaces it).
    pub info: Option<Value>,
    /// New settings (replaces them).
    pub settings: Option<Value>,
    /// The update time; now when `None`.
    pub updated_at: Option<i64>,
}

impl UserPatch {
    /// Applies the patch to `user` after checking it; on error `user` is unchanged.
    pub fn apply(&self, user: &mut User, now: i64) -> Result<()> {
        if let Some(email) = &self.email {
            validate::email(email)?;
        }
        if let Some(name) = &self.name {
            validate::text("user name", name)?;
        }
        if let Some(role) = &self.role {
            check_role(role)?;
        }
        if let Some(url) = &self.profile_image_url {
            validate::text("profile_image_url", url)?;
        }
        for (what, v) in [("info", &self.info), ("settings", &self.settings)] {
            if let Some(v) = v {
                validate::object(what, v)?;
            }
        }
        let updated_at = self.updated_at.unwrap_or(now);
        validate::timestamp("updated_at", updated_at)?;
        if let Some(email) = &self.email {
            user.email = email.clone();
        }
        if let Some(name) = &self.name {
            user.name = name.clone();
        }
        if let Some(role) = &self.role {
            user.role = role.clone();
        }
        if let Some(url) = &self.profile_image_url {
            user.profile_image_url = url.clone();
        }
        if let Some(info) = &self.info {
            user.info = Some(info.clone());
        }
        if let Some(settings) = &self.settings {
            user.settings = Some(settings.clone());
        }
        user.updated_at = updated_at;
        Ok(())
    }
}

/// Storage of users.
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Creates a user. `Conflict` when the id or the email (case-insensitively) is taken.
    async fn create(&self, user: NewUser) -> Result<User>;
    /// Creates many users, all or nothing.
    async fn create_many(&self, users: Vec<NewUser>) -> Result<Vec<User>>;
    /// The user with this id; `NotFound` otherwise.
    async fn get(&self, id: &str) -> Result<User>;
    /// The user with this email, compared case-insensitively; `NotFound` otherwise.
    async fn get_by_email(&self, email: &str) -> Result<User>;
    /// Applies a patch; `NotFound` when missing, `Conflict` when the new email is taken.
    async fn update(&self, id: &str, patch: UserPatch) -> Result<User>;
    /// Records that the user was active at `at` (epoch seconds): sets `last_active_at` and
    /// nothing else, `updated_at` included, as Open WebUI does on a signed-in user's requests
    /// (`update_last_active_by_id`). The change feed announces it live as an update of the
    /// user; a catch-up, which reads users by `updated_at`, does not find it again.
    /// `NotFound` when missing.
    async fn set_last_active(&self, id: &str, at: i64) -> Result<()>;
    /// Deletes the user row only; `Store::delete_user` also deletes what the user owns.
    async fn delete(&self, id: &str) -> Result<()>;
    /// Users ordered by `created_at DESC, id`.
    async fn list(&self, page: PageRequest) -> Result<Page<User>>;
    /// Up to `limit` users with an id greater than `after`, ordered by id (for export).
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>>;
    /// The user's session stamp, where the store keeps Open WebUI's credentials (`auth`):
    /// Open WebUI puts it into every token it issues and rotates it to revoke them all (a
    /// password change, "sign out everywhere"). `Ok(None)` when the user has none (an `auth`
    /// row without one, or no `auth` row), `NotFound` when there is no such user, and
    /// `Unsupported` on a store that keeps no credentials.
    async fn session_stamp(&self, id: &str) -> Result<Option<String>>;
    /// The ids [`scan`](Self::scan) would return, without decoding the records: an export
    /// finds the id of a record it cannot read this way and sets that record aside.
    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        Ok(self
            .scan(after, limit)
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect())
    }
}
