//! Channels (`channel`), their members (`channel_member`), messages (`message`, threaded by
//! `parent_id`) and reactions (`message_reaction`); every timestamp in nanoseconds.
//!
//! A standard channel (`type` null) is shared through access grants (resource type
//! `channel`); a `group` or `dm` channel is seen by its active members. A user's channel list is
//! both, without deleted or archived channels, as Open WebUI's `get_channels_by_user_id` builds
//! it. Posting a message joins its author to the channel. Deleting a message deletes its
//! reactions and its thread; deleting a channel deletes its members, messages, reactions,
//! file links and grants.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::access::{AccessGrants, Grant, Shared, Viewer};
use super::record::{self, Record, Records, stamps};
use crate::rows::tables::{
    CHANNEL, CHANNEL_FILE, CHANNEL_MEMBER, CHANNEL_MESSAGE, MESSAGE_REACTION,
};
use crate::rows::{Cond, Dir, RowOp, RowStore, Table};
use crate::{Error, Page, PageRequest, Result};

/// A channel (`channel` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    /// Id (uuid4).
    pub id: String,
    /// Who created it.
    pub user_id: Option<String>,
    /// Name (lower case).
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Data.
    pub data: Option<Value>,
    /// Metadata.
    pub meta: Option<Value>,
    /// Created (epoch nanoseconds).
    pub created_at: Option<i64>,
    /// Updated (epoch nanoseconds).
    pub updated_at: Option<i64>,
    /// `None` (standard), `group` or `dm`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Private.
    pub is_private: Option<bool>,
    /// Archived (nanoseconds), if archived.
    pub archived_at: Option<i64>,
    /// Who archived it.
    pub archived_by: Option<String>,
    /// Deleted (nanoseconds), if soft-deleted.
    pub deleted_at: Option<i64>,
    /// Who deleted it.
    pub deleted_by: Option<String>,
    /// Who changed it last.
    pub updated_by: Option<String>,
}

impl Record for Channel {
    const TABLE: &'static Table = &CHANNEL;
    const ENTITY: &'static str = "channel";
    fn id(&self) -> &str {
        &self.id
    }
}

impl Shared for Channel {
    const RESOURCE: &'static str = "channel";
    const TEXT: &'static [&'static str] = &["name", "description"];
}

/// A membership of a channel (`channel_member` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelMember {
    /// Id (uuid4).
    pub id: String,
    /// The channel.
    pub channel_id: String,
    /// The member (an app member has `app_id` instead).
    pub user_id: Option<String>,
    /// Created (nanoseconds).
    pub created_at: Option<i64>,
    /// `joined` or `left`.
    pub status: Option<String>,
    /// Still in the channel.
    pub is_active: bool,
    /// Muted by the member.
    pub is_channel_muted: bool,
    /// Pinned by the member.
    pub is_channel_pinned: bool,
    /// Data.
    pub data: Option<Value>,
    /// Metadata.
    pub meta: Option<Value>,
    /// Joined (nanoseconds).
    pub joined_at: i64,
    /// Left (nanoseconds).
    pub left_at: Option<i64>,
    /// Read up to (nanoseconds).
    pub last_read_at: Option<i64>,
    /// Updated (nanoseconds).
    pub updated_at: Option<i64>,
    /// `manager` or a plain member.
    pub role: Option<String>,
    /// Who invited the member.
    pub invited_by: Option<String>,
    /// Invited (nanoseconds).
    pub invited_at: Option<i64>,
    /// An app member's id.
    pub app_id: Option<String>,
}

impl Record for ChannelMember {
    const TABLE: &'static Table = &CHANNEL_MEMBER;
    const ENTITY: &'static str = "channel member";
    fn id(&self) -> &str {
        &self.id
    }
}

/// A channel message (`message` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelMessage {
    /// Id (uuid4).
    pub id: String,
    /// Author.
    pub user_id: Option<String>,
    /// The channel.
    pub channel_id: Option<String>,
    /// Text.
    pub content: Option<String>,
    /// Data (files, ...).
    pub data: Option<Value>,
    /// Metadata.
    pub meta: Option<Value>,
    /// Posted (nanoseconds).
    pub created_at: Option<i64>,
    /// Edited (nanoseconds).
    pub updated_at: Option<i64>,
    /// The thread's first message, for a reply in a thread.
    pub parent_id: Option<String>,
    /// The message this one quotes.
    pub reply_to_id: Option<String>,
    /// Pinned in the channel.
    pub is_pinned: bool,
    /// Pinned (nanoseconds).
    pub pinned_at: Option<i64>,
    /// Who pinned it.
    pub pinned_by: Option<String>,
    /// An app author's id.
    pub app_id: Option<String>,
}

impl Record for ChannelMessage {
    const TABLE: &'static Table = &CHANNEL_MESSAGE;
    const ENTITY: &'static str = "channel message";
    fn id(&self) -> &str {
        &self.id
    }
}

/// A reaction to a channel message (`message_reaction` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageReaction {
    /// Id (uuid4).
    pub id: String,
    /// Who reacted.
    pub user_id: String,
    /// The message.
    pub message_id: String,
    /// The emoji name.
    pub name: String,
    /// Reacted (nanoseconds).
    pub created_at: Option<i64>,
}

impl Record for MessageReaction {
    const TABLE: &'static Table = &MESSAGE_REACTION;
    const ENTITY: &'static str = "reaction";
    fn id(&self) -> &str {
        &self.id
    }
}

/// A channel to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewChannel {
    /// Id to keep; a uuid4 when `None`.
    pub id: Option<String>,
    /// Creator.
    pub user_id: String,
    /// Name (not empty; stored in lower case, as Open WebUI does).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// `None` (standard), `group` or `dm`.
    pub kind: Option<String>,
    /// Private.
    pub is_private: Option<bool>,
    /// Data object.
    pub data: Option<Value>,
    /// Metadata object.
    pub meta: Option<Value>,
    /// Grants (standard channels).
    pub access_grants: Vec<Grant>,
    /// Members besides the creator (`group` and `dm` channels).
    pub member_ids: Vec<String>,
    /// Created (nanoseconds); now when `None`.
    pub created_at: Option<i64>,
}

/// Changes to a channel; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelPatch {
    /// New name (stored in lower case).
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Private.
    pub is_private: Option<bool>,
    /// Keys merged into `data`.
    pub data: Option<Map<String, Value>>,
    /// Keys merged into `meta`.
    pub meta: Option<Map<String, Value>>,
    /// New grants (replace them all).
    pub access_grants: Option<Vec<Grant>>,
}

/// A message to post.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewChannelMessage {
    /// Id to keep; a uuid4 when `None`.
    pub id: Option<String>,
    /// The channel.
    pub channel_id: String,
    /// Author.
    pub user_id: String,
    /// Text.
    pub content: String,
    /// The thread's first message (same channel).
    pub parent_id: Option<String>,
    /// The quoted message.
    pub reply_to_id: Option<String>,
    /// Data object.
    pub data: Option<Value>,
    /// Metadata object.
    pub meta: Option<Value>,
    /// Posted (nanoseconds); now when `None`.
    pub created_at: Option<i64>,
}

fn is_member_channel(kind: Option<&str>) -> bool {
    matches!(kind, Some("group" | "dm"))
}

fn member_row(
    channel_id: &str,
    user_id: &str,
    invited_by: Option<&str>,
    now: i64,
) -> ChannelMember {
    ChannelMember {
        id: crate::validate::new_id(),
        channel_id: channel_id.to_owned(),
        user_id: Some(user_id.to_owned()),
        created_at: Some(now),
        status: Some("joined".into()),
        is_active: true,
        is_channel_muted: false,
        is_channel_pinned: false,
        data: None,
        meta: None,
        joined_at: now,
        left_at: None,
        last_read_at: Some(now),
        updated_at: Some(now),
        role: None,
        invited_by: invited_by.map(str::to_owned),
        invited_at: invited_by.map(|_| now),
        app_id: None,
    }
}

/// Channels, members, messages and reactions. See the [module docs](self).
#[derive(Clone)]
pub struct Channels {
    channels: Records<Channel>,
    members: Records<ChannelMember>,
    messages: Records<ChannelMessage>,
    reactions: Records<MessageReaction>,
    grants: AccessGrants,
}

impl Channels {
    pub(crate) fn new(rows: Arc<dyn RowStore>) -> Self {
        Channels {
            channels: Records::new(rows.clone()),
            members: Records::new(rows.clone()),
            messages: Records::new(rows.clone()),
            reactions: Records::new(rows.clone()),
            grants: AccessGrants::new(rows),
        }
    }

    /// The channel records (generic reads: scan for export, custom filters).
    pub fn records(&self) -> &Records<Channel> {
        &self.channels
    }

    /// The membership records.
    pub fn member_records(&self) -> &Records<ChannelMember> {
        &self.members
    }

    /// The message records.
    pub fn message_records(&self) -> &Records<ChannelMessage> {
        &self.messages
    }

    /// The reaction records.
    pub fn reaction_records(&self) -> &Records<MessageReaction> {
        &self.reactions
    }

    /// Creates a channel: with its grants, and for `group`/`dm` channels its creator and
    /// `member_ids` as members, atomically.
    pub async fn create(&self, new: NewChannel) -> Result<Channel> {
        crate::validate::id("channel user id", &new.user_id)?;
        record::name("channel name", &new.name)?;
        record::object("channel data", &new.data)?;
        record::object("channel meta", &new.meta)?;
        if let Some(kind) = &new.kind
            && !matches!(kind.as_str(), "group" | "dm")
        {
            return Err(Error::invalid(format!(
                "channel type {kind:?} is not one of group, dm (or none for a standard channel)"
            )));
        }
        for member in &new.member_ids {
            crate::validate::id("channel member id", member)?;
        }
        let id = record::new_id("channel id", new.id)?;
        let (created, _) = stamps(&CHANNEL, new.created_at, None)?;
        let channel = Channel {
            id,
            user_id: Some(new.user_id.clone()),
            name: Some(new.name.to_lowercase()),
            description: new.description,
            data: new.data,
            meta: new.meta,
            created_at: Some(created),
            updated_at: Some(created),
            kind: new.kind,
            is_private: new.is_private,
            archived_at: None,
            archived_by: None,
            deleted_at: None,
            deleted_by: None,
            updated_by: None,
        };
        let mut ops = vec![Records::insert_op(&channel)?];
        if is_member_channel(channel.kind.as_deref()) {
            let mut members = BTreeSet::from([new.user_id.clone()]);
            members.extend(new.member_ids.iter().cloned());
            for member in members {
                let invited_by = (member != new.user_id).then_some(new.user_id.as_str());
                ops.push(Records::insert_op(&member_row(
                    &channel.id,
                    &member,
                    invited_by,
                    created,
                ))?);
            }
        }
        ops.extend(AccessGrants::replace_ops(
            Channel::RESOURCE,
            &channel.id,
            &new.access_grants,
            crate::rows::TimeUnit::Seconds.now(),
        )?);
        self.channels.write(ops).await?;
        Ok(channel)
    }

    /// The channel with this id.
    pub async fn get(&self, id: &str) -> Result<Channel> {
        self.channels.get(id).await
    }

    /// The channels `user_id` sees, by name: `group`/`dm` channels the user is an active member
    /// of, and standard channels the user owns or was granted read on; never deleted or
    /// archived ones.
    pub async fn for_user(&self, user_id: &str) -> Result<Vec<Channel>> {
        let memberships: Vec<Value> = self
            .members
            .list(
                vec![
                    Cond::Eq("user_id", user_id.into()),
                    Cond::Eq("is_active", true.into()),
                ],
                &[],
            )
            .await?
            .into_iter()
            .map(|m| Value::from(m.channel_id))
            .collect();
        let mut standard = vec![Cond::Any(vec![
            vec![Cond::IsNull("type")],
            vec![
                Cond::Ne("type", "group".into()),
                Cond::Ne("type", "dm".into()),
            ],
        ])];
        if let Some(access) = self
            .grants
            .access_filter::<Channel>(
                &Viewer::User(user_id.to_owned()),
                super::access::Permission::Read,
            )
            .await?
        {
            standard.push(access);
        }
        let filter = vec![
            Cond::IsNull("deleted_at"),
            Cond::IsNull("archived_at"),
            Cond::Any(vec![
                vec![
                    Cond::In("type", vec!["group".into(), "dm".into()]),
                    Cond::In("id", memberships),
                ],
                standard,
            ]),
        ];
        self.channels.list(filter, &[("name", Dir::Asc)]).await
    }

    /// Changes a channel as `by`: name (lower-cased), description, privacy, merged `data` and
    /// `meta`, grants when given.
    pub async fn update(&self, id: &str, by: &str, patch: ChannelPatch) -> Result<Channel> {
        let mut channel = self.channels.get(id).await?;
        if let Some(name) = patch.name {
            record::name("channel name", &name)?;
            channel.name = Some(name.to_lowercase());
        }
        if let Some(description) = patch.description {
            crate::validate::text("channel description", &description)?;
            channel.description = Some(description);
        }
        if let Some(private) = patch.is_private {
            channel.is_private = Some(private);
        }
        for (what, value, slot) in [
            ("channel data", patch.data, &mut channel.data),
            ("channel meta", patch.meta, &mut channel.meta),
        ] {
            if let Some(map) = value {
                crate::validate::json_map(what, &map)?;
                *slot = Some(record::merge(slot.take(), map));
            }
        }
        let now = CHANNEL.time_unit.now();
        channel.updated_at = Some(now);
        channel.updated_by = Some(by.to_owned());
        let mut ops = vec![Records::upsert_op(&channel)?];
        if let Some(grants) = &patch.access_grants {
            ops.extend(AccessGrants::replace_ops(
                Channel::RESOURCE,
                id,
                grants,
                crate::rows::TimeUnit::Seconds.now(),
            )?);
        }
        self.channels.write(ops).await?;
        Ok(channel)
    }

    /// Archives (or unarchives) a channel as `by`.
    pub async fn set_archived(&self, id: &str, by: &str, archived: bool) -> Result<Channel> {
        let mut channel = self.channels.get(id).await?;
        let now = CHANNEL.time_unit.now();
        channel.archived_at = archived.then_some(now);
        channel.archived_by = archived.then(|| by.to_owned());
        channel.updated_at = Some(now);
        self.channels.replace(channel).await
    }

    /// Deletes a channel with its members, messages, reactions, file links and grants.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.channels.get(id).await?;
        let message_ids: Vec<Value> = self
            .messages
            .list(vec![Cond::Eq("channel_id", id.into())], &[])
            .await?
            .into_iter()
            .map(|m| Value::from(m.id))
            .collect();
        self.channels
            .write(vec![
                Records::<MessageReaction>::delete_op(vec![Cond::In("message_id", message_ids)]),
                RowOp::Delete {
                    table: &CHANNEL_FILE,
                    filter: vec![Cond::Eq("channel_id", id.into())],
                },
                Records::<ChannelMessage>::delete_op(vec![Cond::Eq("channel_id", id.into())]),
                Records::<ChannelMember>::delete_op(vec![Cond::Eq("channel_id", id.into())]),
                AccessGrants::delete_ops(Channel::RESOURCE, &[id.to_owned()]),
                Records::<Channel>::delete_op(vec![Cond::Eq("id", id.into())]),
            ])
            .await?;
        Ok(())
    }

    /// Joins `user_id` to the channel (an existing membership is returned as it is, a left
    /// one becomes active again).
    pub async fn join(&self, channel_id: &str, user_id: &str) -> Result<ChannelMember> {
        crate::validate::id("user id", user_id)?;
        self.channels.get(channel_id).await?;
        let now = CHANNEL_MEMBER.time_unit.now();
        match self.member(channel_id, user_id).await? {
            Some(member) if member.is_active => Ok(member),
            Some(mut member) => {
                member.is_active = true;
                member.status = Some("joined".into());
                member.left_at = None;
                member.joined_at = now;
                member.updated_at = Some(now);
                self.members.replace(member).await
            }
            None => {
                self.members
                    .insert(member_row(channel_id, user_id, None, now))
                    .await
            }
        }
    }

    /// Marks `user_id` as having left the channel; `NotFound` when not a member.
    pub async fn leave(&self, channel_id: &str, user_id: &str) -> Result<()> {
        let mut member = self
            .member(channel_id, user_id)
            .await?
            .ok_or_else(|| Error::not_found("channel member", user_id))?;
        let now = CHANNEL_MEMBER.time_unit.now();
        member.is_active = false;
        member.status = Some("left".into());
        member.left_at = Some(now);
        member.updated_at = Some(now);
        self.members.replace(member).await?;
        Ok(())
    }

    /// The membership of `user_id`, if any.
    pub async fn member(&self, channel_id: &str, user_id: &str) -> Result<Option<ChannelMember>> {
        self.members
            .find(vec![
                Cond::Eq("channel_id", channel_id.into()),
                Cond::Eq("user_id", user_id.into()),
            ])
            .await
    }

    /// The active members of a channel, earliest joined first.
    pub async fn members(&self, channel_id: &str) -> Result<Vec<ChannelMember>> {
        self.members
            .list(
                vec![
                    Cond::Eq("channel_id", channel_id.into()),
                    Cond::Eq("is_active", true.into()),
                ],
                &[("joined_at", Dir::Asc)],
            )
            .await
    }

    /// Records that `user_id` read the channel up to now.
    pub async fn mark_read(&self, channel_id: &str, user_id: &str) -> Result<()> {
        let now = CHANNEL_MEMBER.time_unit.now();
        self.set_member(
            channel_id,
            user_id,
            record::set([("last_read_at", now.into()), ("updated_at", now.into())]),
        )
        .await
    }

    /// Pins or unpins the channel for `user_id`.
    pub async fn set_pinned(&self, channel_id: &str, user_id: &str, pinned: bool) -> Result<()> {
        self.set_member(
            channel_id,
            user_id,
            record::set([("is_channel_pinned", pinned.into())]),
        )
        .await
    }

    /// Mutes or unmutes the channel for `user_id`.
    pub async fn set_muted(&self, channel_id: &str, user_id: &str, muted: bool) -> Result<()> {
        self.set_member(
            channel_id,
            user_id,
            record::set([("is_channel_muted", muted.into())]),
        )
        .await
    }

    async fn set_member(
        &self,
        channel_id: &str,
        user_id: &str,
        set: crate::rows::Row,
    ) -> Result<()> {
        let counts = self
            .members
            .write(vec![Records::<ChannelMember>::update_op(
                vec![
                    Cond::Eq("channel_id", channel_id.into()),
                    Cond::Eq("user_id", user_id.into()),
                ],
                set,
            )])
            .await?;
        if counts.first().copied().unwrap_or(0) == 0 {
            return Err(Error::not_found("channel member", user_id));
        }
        Ok(())
    }

    /// Posts a message (joining its author to the channel, atomically). A thread parent must
    /// be a message of the same channel.
    pub async fn post(&self, new: NewChannelMessage) -> Result<ChannelMessage> {
        crate::validate::id("author id", &new.user_id)?;
        crate::validate::text("message content", &new.content)?;
        record::object("message data", &new.data)?;
        record::object("message meta", &new.meta)?;
        let id = record::new_id("message id", new.id)?;
        self.channels.get(&new.channel_id).await?;
        for (what, other) in [("thread", &new.parent_id), ("quoted", &new.reply_to_id)] {
            if let Some(other) = other {
                let parent = self.messages.get(other).await?;
                if parent.channel_id.as_deref() != Some(new.channel_id.as_str()) {
                    return Err(Error::invalid(format!(
                        "the {what} message {other:?} is in another channel"
                    )));
                }
            }
        }
        let (created, _) = stamps(&CHANNEL_MESSAGE, new.created_at, None)?;
        let message = ChannelMessage {
            id,
            user_id: Some(new.user_id.clone()),
            channel_id: Some(new.channel_id.clone()),
            content: Some(new.content),
            data: new.data,
            meta: new.meta,
            created_at: Some(created),
            updated_at: Some(created),
            parent_id: new.parent_id,
            reply_to_id: new.reply_to_id,
            is_pinned: false,
            pinned_at: None,
            pinned_by: None,
            app_id: None,
        };
        let mut ops = vec![Records::insert_op(&message)?];
        match self.member(&new.channel_id, &new.user_id).await? {
            None => ops.push(Records::insert_op(&member_row(
                &new.channel_id,
                &new.user_id,
                None,
                created,
            ))?),
            Some(member) if !member.is_active => {
                let mut member = member;
                member.is_active = true;
                member.status = Some("joined".into());
                member.left_at = None;
                member.updated_at = Some(created);
                ops.push(Records::upsert_op(&member)?);
            }
            Some(_) => {}
        }
        self.messages.write(ops).await?;
        Ok(message)
    }

    /// The message with this id.
    pub async fn message(&self, id: &str) -> Result<ChannelMessage> {
        self.messages.get(id).await
    }

    /// The channel's top-level messages (not thread replies), newest first, one page.
    pub async fn messages(
        &self,
        channel_id: &str,
        page: PageRequest,
    ) -> Result<Page<ChannelMessage>> {
        self.messages
            .page(
                vec![
                    Cond::Eq("channel_id", channel_id.into()),
                    Cond::IsNull("parent_id"),
                ],
                &[("created_at", Dir::Desc)],
                page,
            )
            .await
    }

    /// The replies in a thread, newest first, one page.
    pub async fn thread(
        &self,
        channel_id: &str,
        parent_id: &str,
        page: PageRequest,
    ) -> Result<Page<ChannelMessage>> {
        self.messages
            .page(
                vec![
                    Cond::Eq("channel_id", channel_id.into()),
                    Cond::Eq("parent_id", parent_id.into()),
                ],
                &[("created_at", Dir::Desc)],
                page,
            )
            .await
    }

    /// The channel's pinned messages, most recently pinned first.
    pub async fn pinned(&self, channel_id: &str) -> Result<Vec<ChannelMessage>> {
        self.messages
            .list(
                vec![
                    Cond::Eq("channel_id", channel_id.into()),
                    Cond::Eq("is_pinned", true.into()),
                ],
                &[("pinned_at", Dir::Desc)],
            )
            .await
    }

    /// Edits a message's text (and merges `data`/`meta` keys when given).
    pub async fn edit(
        &self,
        id: &str,
        content: &str,
        data: Option<Map<String, Value>>,
        meta: Option<Map<String, Value>>,
    ) -> Result<ChannelMessage> {
        crate::validate::text("message content", content)?;
        let mut message = self.messages.get(id).await?;
        message.content = Some(content.to_owned());
        for (what, value, slot) in [
            ("message data", data, &mut message.data),
            ("message meta", meta, &mut message.meta),
        ] {
            if let Some(map) = value {
                crate::validate::json_map(what, &map)?;
                *slot = Some(record::merge(slot.take(), map));
            }
        }
        message.updated_at = Some(CHANNEL_MESSAGE.time_unit.now());
        self.messages.replace(message).await
    }

    /// Pins or unpins a message as `by`.
    pub async fn set_message_pinned(
        &self,
        id: &str,
        by: &str,
        pinned: bool,
    ) -> Result<ChannelMessage> {
        let mut message = self.messages.get(id).await?;
        let now = CHANNEL_MESSAGE.time_unit.now();
        message.is_pinned = pinned;
        message.pinned_at = pinned.then_some(now);
        message.pinned_by = pinned.then(|| by.to_owned());
        self.messages.replace(message).await
    }

    /// Deletes a message with its reactions, and its thread (the replies and theirs).
    pub async fn delete_message(&self, id: &str) -> Result<()> {
        self.messages.get(id).await?;
        let mut ids: Vec<Value> = self
            .messages
            .list(vec![Cond::Eq("parent_id", id.into())], &[])
            .await?
            .into_iter()
            .map(|m| Value::from(m.id))
            .collect();
        ids.push(Value::from(id));
        self.messages
            .write(vec![
                Records::<MessageReaction>::delete_op(vec![Cond::In("message_id", ids.clone())]),
                Records::<ChannelMessage>::delete_op(vec![Cond::In("id", ids)]),
            ])
            .await?;
        Ok(())
    }

    /// Adds `user_id`'s reaction `name` to a message (idempotent).
    pub async fn react(
        &self,
        message_id: &str,
        user_id: &str,
        name: &str,
    ) -> Result<MessageReaction> {
        crate::validate::id("user id", user_id)?;
        record::name("reaction name", name)?;
        self.messages.get(message_id).await?;
        let filter = vec![
            Cond::Eq("message_id", message_id.into()),
            Cond::Eq("user_id", user_id.into()),
            Cond::Eq("name", name.into()),
        ];
        if let Some(existing) = self.reactions.find(filter).await? {
            return Ok(existing);
        }
        self.reactions
            .insert(MessageReaction {
                id: crate::validate::new_id(),
                user_id: user_id.to_owned(),
                message_id: message_id.to_owned(),
                name: name.to_owned(),
                created_at: Some(MESSAGE_REACTION.time_unit.now()),
            })
            .await
    }

    /// Removes `user_id`'s reaction `name` from a message; whether there was one.
    pub async fn unreact(&self, message_id: &str, user_id: &str, name: &str) -> Result<bool> {
        let counts = self
            .reactions
            .write(vec![Records::<MessageReaction>::delete_op(vec![
                Cond::Eq("message_id", message_id.into()),
                Cond::Eq("user_id", user_id.into()),
                Cond::Eq("name", name.into()),
            ])])
            .await?;
        Ok(counts.first().copied().unwrap_or(0) > 0)
    }

    /// The reactions to a message, oldest first.
    pub async fn reactions(&self, message_id: &str) -> Result<Vec<MessageReaction>> {
        self.reactions
            .list(
                vec![Cond::Eq("message_id", message_id.into())],
                &[("created_at", Dir::Asc)],
            )
            .await
    }
}
