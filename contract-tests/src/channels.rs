//! Contracts of channels: who sees which channel, membership, threads, reactions, pins.

use chatstore_core::models::{ChannelPatch, Grant, NewChannel, NewChannelMessage, Permission};
use chatstore_core::{PageRequest, Result, Store};

use crate::assert_kind;
use crate::folders::workspace;
use crate::notes::NS0;

fn channel(id: &str, user: &str, kind: Option<&str>, members: &[&str]) -> NewChannel {
    NewChannel {
        id: Some(id.to_owned()),
        user_id: user.to_owned(),
        name: format!("Channel-{id}"),
        kind: kind.map(str::to_owned),
        member_ids: members.iter().map(|m| (*m).to_owned()).collect(),
        created_at: Some(NS0),
        ..NewChannel::default()
    }
}

fn post(id: &str, channel: &str, user: &str, parent: Option<&str>, ts: i64) -> NewChannelMessage {
    NewChannelMessage {
        id: Some(id.to_owned()),
        channel_id: channel.to_owned(),
        user_id: user.to_owned(),
        content: format!("message {id}"),
        parent_id: parent.map(str::to_owned),
        created_at: Some(NS0 + ts),
        ..NewChannelMessage::default()
    }
}

/// A user sees the group and dm channels they are an active member of and the standard
/// channels they own or were granted, never archived or deleted ones; names are lower case.
pub async fn users_see_member_and_granted_channels(store: &Store) -> Result<()> {
    let channels = workspace(store)?.channels();
    let made = channels.create(channel("general", "u1", None, &[])).await?;
    assert_eq!(made.name.as_deref(), Some("channel-general"));
    let mut public = channel("public", "u2", None, &[]);
    public.access_grants = vec![Grant::public_read()];
    channels.create(public).await?;
    let mut granted = channel("granted", "u2", None, &[]);
    granted.access_grants = vec![Grant::user("u1", Permission::Read)];
    channels.create(granted).await?;
    channels.create(channel("closed", "u2", None, &[])).await?;
    channels
        .create(channel("dm", "u2", Some("dm"), &["u1"]))
        .await?;
    channels
        .create(channel("group", "u2", Some("group"), &["u3"]))
        .await?;
    channels
        .create(channel("archived", "u1", None, &[]))
        .await?;
    channels.set_archived("archived", "u1", true).await?;
    let seen: Vec<String> = channels
        .for_user("u1")
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(seen, vec!["dm", "general", "granted", "public"]);
    channels.leave("dm", "u1").await?;
    let seen: Vec<String> = channels
        .for_user("u1")
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(seen, vec!["general", "granted", "public"]);
    assert_kind!(
        channels
            .create(channel("x", "u1", Some("forum"), &[]))
            .await,
        InvalidInput
    );
    Ok(())
}

/// Joining is idempotent and re-activates a left member; members list the active ones;
/// posting joins the author.
pub async fn membership_follows_joins_leaves_and_posts(store: &Store) -> Result<()> {
    let channels = workspace(store)?.channels();
    channels.create(channel("c1", "u1", None, &[])).await?;
    let first = channels.join("c1", "u1").await?;
    assert_eq!(channels.join("c1", "u1").await?.id, first.id);
    channels.leave("c1", "u1").await?;
    assert!(channels.members("c1").await?.is_empty());
    let back = channels.join("c1", "u1").await?;
    assert_eq!(back.id, first.id);
    assert!(back.is_active);
    channels.post(post("m1", "c1", "u2", None, 1)).await?;
    let mut members: Vec<_> = channels
        .members("c1")
        .await?
        .into_iter()
        .filter_map(|m| m.user_id)
        .collect();
    members.sort();
    assert_eq!(members, vec!["u1", "u2"]);
    channels.set_pinned("c1", "u2", true).await?;
    channels.set_muted("c1", "u2", true).await?;
    channels.mark_read("c1", "u2").await?;
    let member = channels.member("c1", "u2").await?.expect("a member");
    assert!(member.is_channel_pinned && member.is_channel_muted);
    assert_kind!(channels.set_pinned("c1", "u9", true).await, NotFound);
    let renamed = channels
        .update(
            "c1",
            "u1",
            ChannelPatch {
                name: Some("Renamed".into()),
                ..ChannelPatch::default()
            },
        )
        .await?;
    assert_eq!(renamed.name.as_deref(), Some("renamed"));
    assert_eq!(renamed.updated_by.as_deref(), Some("u1"));
    Ok(())
}

/// Top-level messages and thread replies list apart, newest first with totals; a thread
/// parent must be in the same channel; deleting a message deletes its thread and reactions.
pub async fn threads_list_apart_and_delete_together(store: &Store) -> Result<()> {
    let channels = workspace(store)?.channels();
    channels.create(channel("c1", "u1", None, &[])).await?;
    channels.create(channel("c2", "u1", None, &[])).await?;
    channels.post(post("m1", "c1", "u1", None, 1)).await?;
    channels.post(post("m2", "c1", "u2", None, 2)).await?;
    channels.post(post("r1", "c1", "u2", Some("m1"), 3)).await?;
    channels.post(post("r2", "c1", "u1", Some("m1"), 4)).await?;
    assert_kind!(
        channels.post(post("x", "c2", "u1", Some("m1"), 5)).await,
        InvalidInput
    );
    let top = channels.messages("c1", PageRequest::default()).await?;
    let ids: Vec<_> = top.items.iter().map(|m| m.id.as_str()).collect();
    assert_eq!((top.total, ids), (2, vec!["m2", "m1"]));
    let thread = channels.thread("c1", "m1", PageRequest::first(1)).await?;
    assert_eq!(thread.total, 2);
    assert_eq!(thread.items[0].id, "r2");
    assert_eq!(thread.items[0].created_at, Some(NS0 + 4));
    channels.react("r1", "u1", "👍").await?;
    channels.react("r1", "u1", "👍").await?;
    channels.react("r1", "u2", "👍").await?;
    channels.react("m2", "u1", "🎉").await?;
    assert_eq!(channels.reactions("r1").await?.len(), 2);
    assert!(channels.unreact("r1", "u2", "👍").await?);
    assert!(!channels.unreact("r1", "u2", "👍").await?);
    channels.set_message_pinned("m2", "u1", true).await?;
    assert_eq!(channels.pinned("c1").await?.len(), 1);
    let edited = channels.edit("m2", "edited", None, None).await?;
    assert_eq!(edited.content.as_deref(), Some("edited"));
    channels.delete_message("m1").await?;
    for gone in ["m1", "r1", "r2"] {
        assert_kind!(channels.message(gone).await, NotFound);
    }
    assert!(channels.reactions("r1").await?.is_empty());
    assert_eq!(channels.reactions("m2").await?.len(), 1);
    channels.delete("c1").await?;
    assert_kind!(channels.get("c1").await, NotFound);
    assert_eq!(channels.message_records().count(vec![]).await?, 0);
    assert_eq!(channels.reaction_records().count(vec![]).await?, 0);
    assert_eq!(channels.member_records().count(vec![]).await?, 0);
    Ok(())
}
