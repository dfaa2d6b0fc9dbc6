//! Tags in the `owui_tags` collection: one record per `(user_id, tag_id)`, its record id
//! derived from both (`chats::tag_record_id`), so chats point at it through their `tags`
//! relation. Deleting a tag takes it out of every chat and bumps their versions in the same
//! transaction (the `delete_tag` op), so a concurrent chat writer re-reads the chat.

use async_trait::async_trait;
use chatstore_core::{Error, Result, Tag, TagKey, TagRepo, TagUsage, tag_id};
use serde_json::{Value, json};

use crate::PocketBase;
use crate::chats::tag_record_id;
use crate::client::{ListQuery, MAX_PER_PAGE, pages_after, text_of};
use crate::error::Subject;
use crate::tx::TxOp;
use crate::{filter, record};

/// The tag record to create. `meta` is stored wrapped in a one-element array so that
/// `Some(null)` and `None` stay apart (PocketBase returns an empty json field as `null`).
fn body(tag: &Tag) -> Value {
    json!({
        "id": tag_record_id(&tag.user_id, &tag.id),
        "user_id": tag.user_id,
        "tag_id": tag.id,
        "name": tag.name,
        "meta": tag.meta.as_ref().map(|m| record::json_value(&json!([m]))),
    })
}

fn from_record(r: &Value) -> Result<Tag> {
    Ok(Tag {
        id: record::text(r, "tag_id")?,
        name: record::text(r, "name")?,
        user_id: record::text(r, "user_id")?,
        meta: record::json(r, "meta").and_then(|m| m.as_array().and_then(|a| a.first().cloned())),
    })
}

#[async_trait]
impl TagRepo for PocketBase {
    /// The user's tags by id, in pages after the last id read (by page number, a tag deleted
    /// meanwhile hid the first one of the next page).
    async fn list(&self, user_id: &str) -> Result<Vec<Tag>> {
        let of_user = filter::eq("user_id", user_id);
        let records = pages_after(
            None,
            u64::MAX,
            MAX_PER_PAGE,
            text_of("tag_id"),
            |after, n| {
                let q = ListQuery {
                    filter: match after {
                        None => of_user.clone(),
                        Some(id) => format!("{of_user} && tag_id > {}", filter::literal(&id)),
                    },
                    sort: "tag_id".to_owned(),
                    skip_total: true,
                    ..ListQuery::default()
                };
                async move {
                    let subject = Subject::new("tag", user_id);
                    self.client().first(&self.cols().tags, &q, n, subject).await
                }
            },
        )
        .await?;
        records.iter().map(from_record).collect()
    }

    async fn usage(&self, user_id: &str) -> Result<Vec<TagUsage>> {
        let tags = TagRepo::list(self, user_id).await?;
        let mut out = Vec::with_capacity(tags.len());
        for tag in tags {
            let filter = format!(
                "{} && internal = false && tags:each ?= {}",
                filter::eq("user_id", user_id),
                filter::literal(&tag_record_id(user_id, &tag.id))
            );
            let chats = self
                .client()
                .count(&self.cols().chats, &filter, Subject::new("tag", &tag.id))
                .await?;
            out.push(TagUsage { tag, chats });
        }
        Ok(out)
    }

    async fn get(&self, user_id: &str, name_or_id: &str) -> Result<Tag> {
        let r = self
            .client()
            .get_record(
                &self.cols().tags,
                &tag_record_id(user_id, &tag_id(name_or_id)),
                None,
                Subject::new("tag", name_or_id),
            )
            .await?;
        from_record(&r)
    }

    async fn ensure(&self, user_id: &str, name: &str) -> Result<Tag> {
        let id = tag_id(name);
        let ops = vec![self.ensure_tag_op(user_id, &id, name)];
        self.client().tx(ops, Subject::new("tag", &id)).await?;
        TagRepo::get(self, user_id, &id).await
    }

    async fn create_many(&self, tags: Vec<Tag>) -> Result<()> {
        let bodies = tags.iter().map(body).collect();
        self.client()
            .create_all(&self.cols().tags, bodies, Subject::new("tag", ""))
            .await
    }

    async fn delete(&self, user_id: &str, name_or_id: &str) -> Result<()> {
        let ops = vec![TxOp::DeleteTag {
            collection: self.cols().tags.clone(),
            chats: self.cols().chats.clone(),
            entity: "tag",
            id: tag_record_id(user_id, &tag_id(name_or_id)),
        }];
        match self.client().tx(ops, Subject::new("tag", name_or_id)).await {
            Err(Error::NotFound { .. }) => Err(Error::not_found("tag", name_or_id)),
            other => other.map(|_| ()),
        }
    }

    /// Tags by user, then id, in pages after the last tag read (a scan of more than one page
    /// read pages by number, and a tag deleted meanwhile hid the first one of the next page).
    async fn scan(&self, after: Option<&TagKey>, limit: u32) -> Result<Vec<Tag>> {
        chatstore_core::query::validate_scan_limit(limit)?;
        let cursor = |r: &Value| {
            Ok(TagKey {
                user_id: text_of("user_id")(r)?,
                id: text_of("tag_id")(r)?,
            })
        };
        let items = pages_after(
            after.cloned(),
            u64::from(limit),
            MAX_PER_PAGE,
            cursor,
            |after, n| {
                let q = ListQuery {
                    filter: after
                        .map(|a| {
                            format!(
                                "user_id > {u} || (user_id = {u} && tag_id > {t})",
                                u = filter::literal(&a.user_id),
                                t = filter::literal(&a.id)
                            )
                        })
                        .unwrap_or_default(),
                    sort: "user_id,tag_id".to_owned(),
                    skip_total: true,
                    ..ListQuery::default()
                };
                async move {
                    let subject = Subject::new("tag", "");
                    self.client().first(&self.cols().tags, &q, n, subject).await
                }
            },
        )
        .await?;
        items.iter().map(from_record).collect()
    }
}
