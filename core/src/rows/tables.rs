//! Open WebUI 0.12.4's tables beyond the six aggregates, as [`Table`]s: columns, keys, unique
//! constraints, indexes, owners and time units, after the DDL at alembic head `0bd252b206fb`.
//!
//! [`ALL_TABLES`] lists them parents first (a table's foreign keys point to tables before it,
//! or to `user`, `chat`, `file` of the aggregates), the order a migration copies them in.
//!
//! Left out on purpose: credentials and server state (`auth`, `api_key`, `oauth_session`,
//! `config`), code (`function`, `tool`, `skill` and their histories), and the automation and
//! calendar tables; between SQL databases `chatstore migrate` copies those row for row.

use super::{Column, ColumnKind, Table, TimeUnit};

const fn text(name: &'static str) -> Column {
    Column {
        name,
        kind: ColumnKind::Text,
        nullable: true,
    }
}

const fn int(name: &'static str) -> Column {
    Column {
        name,
        kind: ColumnKind::Int,
        nullable: true,
    }
}

const fn boolean(name: &'static str) -> Column {
    Column {
        name,
        kind: ColumnKind::Bool,
        nullable: true,
    }
}

const fn json(name: &'static str) -> Column {
    Column {
        name,
        kind: ColumnKind::Json,
        nullable: true,
    }
}

const fn json_text(name: &'static str) -> Column {
    Column {
        name,
        kind: ColumnKind::JsonText,
        nullable: true,
    }
}

/// The same column, `NOT NULL`.
const fn req(column: Column) -> Column {
    Column {
        nullable: false,
        ..column
    }
}

/// `folder`: a user's folders, nested by `parent_id`; chats point at them with `chat.folder_id`.
pub static FOLDER: Table = Table {
    name: "folder",
    columns: &[
        req(text("id")),
        text("parent_id"),
        req(text("user_id")),
        req(text("name")),
        json("items"),
        json("meta"),
        json("data"),
        req(boolean("is_expanded")),
        req(int("created_at")),
        req(int("updated_at")),
    ],
    primary_key: &["id", "user_id"],
    unique: &[],
    indexes: &[&["user_id", "parent_id"]],
    owner: Some("user_id"),
    time_unit: TimeUnit::Seconds,
};

/// `group`: user groups, nested by `parent_group_id`.
pub static GROUP: Table = Table {
    name: "group",
    columns: &[
        req(text("id")),
        text("user_id"),
        text("name"),
        text("description"),
        json("data"),
        json("meta"),
        json("permissions"),
        int("created_at"),
        int("updated_at"),
        text("parent_group_id"),
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[&["parent_group_id"], &["name"]],
    owner: None,
    time_unit: TimeUnit::Seconds,
};

/// `group_member`: who is in which group.
pub static GROUP_MEMBER: Table = Table {
    name: "group_member",
    columns: &[
        req(text("id")),
        req(text("group_id")),
        req(text("user_id")),
        int("created_at"),
        int("updated_at"),
    ],
    primary_key: &["id"],
    unique: &[&["group_id", "user_id"]],
    indexes: &[&["user_id", "group_id"]],
    owner: Some("user_id"),
    time_unit: TimeUnit::Seconds,
};

/// `access_grant`: who may read or write a resource (knowledge, prompt, model, note, channel,
/// file, folder, shared chat): a user, a group, or everyone (`principal_id` `*`).
pub static ACCESS_GRANT: Table = Table {
    name: "access_grant",
    columns: &[
        req(text("id")),
        req(text("resource_type")),
        req(text("resource_id")),
        req(text("principal_type")),
        req(text("principal_id")),
        req(text("permission")),
        req(int("created_at")),
    ],
    primary_key: &["id"],
    unique: &[&[
        "resource_type",
        "resource_id",
        "principal_type",
        "principal_id",
        "permission",
    ]],
    indexes: &[
        &["resource_type", "resource_id"],
        &["principal_type", "principal_id"],
    ],
    owner: None,
    time_unit: TimeUnit::Seconds,
};

/// `knowledge`: knowledge bases.
pub static KNOWLEDGE: Table = Table {
    name: "knowledge",
    columns: &[
        req(text("id")),
        req(text("user_id")),
        req(text("name")),
        text("description"),
        json("meta"),
        json("data"),
        req(int("created_at")),
        int("updated_at"),
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[&["user_id"], &["updated_at"]],
    owner: Some("user_id"),
    time_unit: TimeUnit::Seconds,
};

/// `knowledge_directory`: folders inside a knowledge base.
pub static KNOWLEDGE_DIRECTORY: Table = Table {
    name: "knowledge_directory",
    columns: &[
        req(text("id")),
        req(text("knowledge_id")),
        text("parent_id"),
        req(text("name")),
        req(text("user_id")),
        req(int("created_at")),
        req(int("updated_at")),
    ],
    primary_key: &["id"],
    unique: &[&["knowledge_id", "parent_id", "name"]],
    indexes: &[&["knowledge_id"], &["parent_id"]],
    owner: None,
    time_unit: TimeUnit::Seconds,
};

/// `knowledge_file`: which files a knowledge base holds.
pub static KNOWLEDGE_FILE: Table = Table {
    name: "knowledge_file",
    columns: &[
        req(text("id")),
        req(text("user_id")),
        req(text("knowledge_id")),
        req(text("file_id")),
        req(int("created_at")),
        req(int("updated_at")),
        text("directory_id"),
    ],
    primary_key: &["id"],
    unique: &[&["knowledge_id", "file_id"]],
    indexes: &[
        &["knowledge_id"],
        &["file_id"],
        &["user_id"],
        &["directory_id"],
    ],
    owner: None,
    time_unit: TimeUnit::Seconds,
};

/// `note`: notes (timestamps in nanoseconds).
pub static NOTE: Table = Table {
    name: "note",
    columns: &[
        req(text("id")),
        text("user_id"),
        text("title"),
        json("data"),
        json("meta"),
        int("created_at"),
        int("updated_at"),
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[&["user_id", "updated_at"]],
    owner: Some("user_id"),
    time_unit: TimeUnit::Nanos,
};

/// `pinned_note`: notes a user pinned.
pub static PINNED_NOTE: Table = Table {
    name: "pinned_note",
    columns: &[
        req(text("id")),
        req(text("user_id")),
        req(text("note_id")),
        req(int("created_at")),
    ],
    primary_key: &["id"],
    unique: &[&["user_id", "note_id"]],
    indexes: &[&["note_id"]],
    owner: Some("user_id"),
    time_unit: TimeUnit::Nanos,
};

/// `memory`: a user's memories (their vectors live in the `user-memory-{user_id}` collection).
pub static MEMORY: Table = Table {
    name: "memory",
    columns: &[
        req(text("id")),
        text("user_id"),
        text("content"),
        int("updated_at"),
        int("created_at"),
        req(text("type")),
        text("path"),
        json("meta"),
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[&["user_id"], &["type"]],
    owner: Some("user_id"),
    time_unit: TimeUnit::Seconds,
};

/// `prompt`: prompts, addressed by their unique `command`.
pub static PROMPT: Table = Table {
    name: "prompt",
    columns: &[
        req(text("id")),
        text("command"),
        req(text("user_id")),
        req(text("name")),
        req(text("content")),
        json("data"),
        json("meta"),
        req(boolean("is_active")),
        text("version_id"),
        json("tags"),
        req(int("created_at")),
        req(int("updated_at")),
    ],
    primary_key: &["id"],
    unique: &[&["command"]],
    indexes: &[&["user_id"], &["updated_at"]],
    owner: Some("user_id"),
    time_unit: TimeUnit::Seconds,
};

/// `prompt_history`: every saved version of a prompt.
pub static PROMPT_HISTORY: Table = Table {
    name: "prompt_history",
    columns: &[
        req(text("id")),
        req(text("prompt_id")),
        text("parent_id"),
        req(json("snapshot")),
        req(text("user_id")),
        text("commit_message"),
        req(int("created_at")),
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[&["prompt_id", "created_at"]],
    owner: None,
    time_unit: TimeUnit::Seconds,
};

/// `model`: model presets (`params` and `meta` are JSON kept in `TEXT` columns).
pub static MODEL: Table = Table {
    name: "model",
    columns: &[
        req(text("id")),
        text("user_id"),
        text("base_model_id"),
        text("name"),
        json_text("params"),
        json_text("meta"),
        int("updated_at"),
        int("created_at"),
        req(boolean("is_active")),
        text("version_id"),
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[&["user_id"], &["base_model_id"], &["updated_at"]],
    owner: Some("user_id"),
    time_unit: TimeUnit::Seconds,
};

/// `model_history`: every saved version of a model.
pub static MODEL_HISTORY: Table = Table {
    name: "model_history",
    columns: &[
        req(text("id")),
        req(text("model_id")),
        text("parent_id"),
        req(json("snapshot")),
        req(text("user_id")),
        text("commit_message"),
        req(int("created_at")),
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[&["model_id", "created_at"]],
    owner: None,
    time_unit: TimeUnit::Seconds,
};

/// `channel`: channels (timestamps in nanoseconds).
pub static CHANNEL: Table = Table {
    name: "channel",
    columns: &[
        req(text("id")),
        text("user_id"),
        text("name"),
        text("description"),
        json("data"),
        json("meta"),
        int("created_at"),
        int("updated_at"),
        text("type"),
        boolean("is_private"),
        int("archived_at"),
        text("archived_by"),
        int("deleted_at"),
        text("deleted_by"),
        text("updated_by"),
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[&["user_id"], &["type"]],
    owner: None,
    time_unit: TimeUnit::Nanos,
};

/// `channel_member`: a user's (or an app's) membership of a channel.
pub static CHANNEL_MEMBER: Table = Table {
    name: "channel_member",
    columns: &[
        req(text("id")),
        req(text("channel_id")),
        text("user_id"),
        int("created_at"),
        text("status"),
        req(boolean("is_active")),
        req(boolean("is_channel_muted")),
        req(boolean("is_channel_pinned")),
        json("data"),
        json("meta"),
        req(int("joined_at")),
        int("left_at"),
        int("last_read_at"),
        int("updated_at"),
        text("role"),
        text("invited_by"),
        int("invited_at"),
        text("app_id"),
    ],
    primary_key: &["id"],
    unique: &[&["channel_id", "app_id"]],
    indexes: &[
        &["channel_id", "user_id"],
        &["user_id"],
        &["app_id", "is_active"],
    ],
    owner: Some("user_id"),
    time_unit: TimeUnit::Nanos,
};

/// `message`: channel messages, threaded by `parent_id` (timestamps in nanoseconds).
pub static CHANNEL_MESSAGE: Table = Table {
    name: "message",
    columns: &[
        req(text("id")),
        text("user_id"),
        text("channel_id"),
        text("content"),
        json("data"),
        json("meta"),
        int("created_at"),
        int("updated_at"),
        text("parent_id"),
        text("reply_to_id"),
        req(boolean("is_pinned")),
        int("pinned_at"),
        text("pinned_by"),
        text("app_id"),
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[
        &["channel_id", "parent_id", "created_at"],
        &["user_id"],
        &["app_id"],
    ],
    owner: None,
    time_unit: TimeUnit::Nanos,
};

/// `message_reaction`: reactions to channel messages.
pub static MESSAGE_REACTION: Table = Table {
    name: "message_reaction",
    columns: &[
        req(text("id")),
        req(text("user_id")),
        req(text("message_id")),
        req(text("name")),
        int("created_at"),
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[&["message_id"], &["user_id"]],
    owner: Some("user_id"),
    time_unit: TimeUnit::Nanos,
};

/// `channel_file`: files shared in a channel.
pub static CHANNEL_FILE: Table = Table {
    name: "channel_file",
    columns: &[
        req(text("id")),
        req(text("user_id")),
        req(text("channel_id")),
        req(text("file_id")),
        req(int("created_at")),
        req(int("updated_at")),
        text("message_id"),
    ],
    primary_key: &["id"],
    unique: &[&["channel_id", "file_id"]],
    indexes: &[&["channel_id"], &["file_id"], &["user_id"]],
    owner: None,
    time_unit: TimeUnit::Seconds,
};

/// `feedback`: ratings of answers, with the chat snapshot they were given on.
pub static FEEDBACK: Table = Table {
    name: "feedback",
    columns: &[
        req(text("id")),
        text("user_id"),
        int("version"),
        text("type"),
        json("data"),
        json("meta"),
        json("snapshot"),
        req(int("created_at")),
        req(int("updated_at")),
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[&["user_id"], &["type"], &["created_at"], &["updated_at"]],
    owner: Some("user_id"),
    time_unit: TimeUnit::Seconds,
};

/// `shared_chat`: snapshots of chats shared by link (`/s/{id}`).
pub static SHARED_CHAT: Table = Table {
    name: "shared_chat",
    columns: &[
        req(text("id")),
        req(text("chat_id")),
        req(text("user_id")),
        text("title"),
        json("chat"),
        int("created_at"),
        int("updated_at"),
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[&["chat_id"], &["user_id"]],
    owner: Some("user_id"),
    time_unit: TimeUnit::Seconds,
};

/// `chat_file`: files attached to a chat's messages.
pub static CHAT_FILE: Table = Table {
    name: "chat_file",
    columns: &[
        req(text("id")),
        req(text("user_id")),
        req(text("chat_id")),
        text("message_id"),
        req(text("file_id")),
        req(int("created_at")),
        req(int("updated_at")),
    ],
    primary_key: &["id"],
    unique: &[&["chat_id", "file_id"]],
    indexes: &[&["chat_id"], &["file_id"], &["message_id"], &["user_id"]],
    owner: Some("user_id"),
    time_unit: TimeUnit::Seconds,
};

/// Every table, parents first.
pub static ALL_TABLES: &[&Table] = &[
    &FOLDER,
    &GROUP,
    &GROUP_MEMBER,
    &ACCESS_GRANT,
    &KNOWLEDGE,
    &KNOWLEDGE_DIRECTORY,
    &KNOWLEDGE_FILE,
    &NOTE,
    &PINNED_NOTE,
    &MEMORY,
    &PROMPT,
    &PROMPT_HISTORY,
    &MODEL,
    &MODEL_HISTORY,
    &CHANNEL,
    &CHANNEL_MEMBER,
    &CHANNEL_MESSAGE,
    &MESSAGE_REACTION,
    &CHANNEL_FILE,
    &FEEDBACK,
    &SHARED_CHAT,
    &CHAT_FILE,
];

/// The table called `name`.
pub fn table(name: &str) -> Option<&'static Table> {
    ALL_TABLES.iter().copied().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_unique_and_index_names_a_column() {
        for t in ALL_TABLES {
            let lists = t
                .unique
                .iter()
                .chain(t.indexes.iter())
                .chain(std::iter::once(&t.primary_key));
            for list in lists {
                for name in *list {
                    assert!(t.column(name).is_some(), "{}.{name}", t.name);
                }
            }
            if let Some(owner) = t.owner {
                assert!(t.column(owner).is_some(), "{}.{owner}", t.name);
            }
            assert_eq!(t.columns[0].name, "id", "{}", t.name);
        }
    }

    #[test]
    fn table_names_are_distinct() {
        let mut names: Vec<_> = ALL_TABLES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL_TABLES.len());
    }
}
