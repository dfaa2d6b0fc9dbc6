//! Tags: per-user labels on chats (Open WebUI's `tag` table, keyed by `(id, user_id)`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result, validate};

/// A tag of one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    /// Id derived from the name by [`tag_id`].
    pub id: String,
    /// Name as first given.
    pub name: String,
    /// Owner.
    pub user_id: String,
    /// Free-form metadata; `None` on tags created from chats.
    pub meta: Option<Value>,
}

/// The key of a tag: `(user_id, id)`; keyset scans run in this order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TagKey {
    /// Owner.
    pub user_id: String,
    /// Tag id.
    pub id: String,
}

/// A tag with the number of the user's chats (internal chats excluded) that carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagUsage {
    /// The tag.
    pub tag: Tag,
    /// How many chats carry it.
    pub chats: u64,
}

/// The tag id Open WebUI derives from a name: ASCII spaces become `_`, then lower case.
pub fn tag_id(name: &str) -> String {
    name.replace(' ', "_").to_lowercase()
}

/// [`tag_id`] after checking the name: not empty, no control characters, not the reserved
/// `none` (which means "no tag" in filters).
pub fn tag_id_checked(name: &str) -> Result<String> {
    if name.trim().is_empty() {
        return Err(Error::invalid("tag name must not be empty or blank"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "tag name {name:?} contains control characters"
        )));
    }
    if name.len() > validate::MAX_ID_LEN {
        return Err(Error::invalid(format!(
            "tag name is {} bytes long; at most {} are allowed",
            name.len(),
            validate::MAX_ID_LEN
        )));
    }
    let id = tag_id(name);
    if id == "none" {
        return Err(Error::invalid(
            "\"none\" is reserved (it means \"no tag\" in filters) and cannot be a tag",
        ));
    }
    Ok(id)
}

/// Storage of tags. Tags are created through chats (`ChatRepo::add_tag`, `set_tags`) or here,
/// and removed when no chat of their user carries them any more.
#[async_trait]
pub trait TagRepo: Send + Sync {
    /// The user's tags ordered by id.
    async fn list(&self, user_id: &str) -> Result<Vec<Tag>>;
    /// The user's tags with the number of chats carrying each, ordered by tag id.
    async fn usage(&self, user_id: &str) -> Result<Vec<TagUsage>>;
    /// The tag with this id or name (normalised to an id); `NotFound` otherwise.
    async fn get(&self, user_id: &str, name_or_id: &str) -> Result<Tag>;
    /// Creates the tag if the user has none with the same id; returns the stored one.
    async fn ensure(&self, user_id: &str, name: &str) -> Result<Tag>;
    /// Creates tags exactly as given (for migration), all or nothing; `Conflict` on a taken key.
    async fn create_many(&self, tags: Vec<Tag>) -> Result<()>;
    /// Removes the tag from every chat of the user and deletes it; `NotFound` when missing.
    async fn delete(&self, user_id: &str, name_or_id: &str) -> Result<()>;
    /// Up to `limit` tags with a key greater than `after`, ordered by `(user_id, id)`.
    async fn scan(&self, after: Option<&TagKey>, limit: u32) -> Result<Vec<Tag>>;
}

/// Checks a tag given whole (for [`TagRepo::create_many`]).
pub fn validate_tag(tag: &Tag) -> Result<()> {
    validate::id("tag user_id", &tag.user_id)?;
    let id = tag_id_checked(&tag.name)?;
    if id != tag.id {
        return Err(Error::invalid(format!(
            "tag id {:?} does not match its name {:?} (expected {id:?})",
            tag.id, tag.name
        )));
    }
    if let Some(meta) = &tag.meta {
        validate::json_text("tag meta", meta)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_ids_follow_open_webui() {
        assert_eq!(tag_id("Work Stuff"), "work_stuff");
        assert_eq!(tag_id(" Lead"), "_lead");
        assert_eq!(tag_id("ÉTÉ"), "été");
        assert!(tag_id_checked("None").is_err());
        assert!(tag_id_checked("  ").is_err());
    }
}
