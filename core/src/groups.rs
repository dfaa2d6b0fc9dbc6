//! Model groups: the units a deployment moves one at a time (routing phases, migration order).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A group of aggregates that moves between backends together.
///
/// `Chats` covers chats, their messages and their tags: a chat's tag set and message rows live
/// in the same backend as the chat. `Workspace` covers Open WebUI's remaining tables, every
/// table of [`crate::rows::ALL_TABLES`] (folders, groups, knowledge, notes, memories, prompts,
/// models, channels, feedback, shared chats, chat files...), which reach the backend through
/// its [`crate::rows::RowStore`]; it comes after files because `knowledge_file`, `chat_file`
/// and `channel_file` point at files and chats, and before vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelGroup {
    /// Users.
    Users,
    /// Chats, messages and tags.
    Chats,
    /// Files (metadata and bytes).
    Files,
    /// Open WebUI's remaining tables, through the store's rows ([`crate::Store::rows`]).
    Workspace,
    /// Vector collections.
    Vectors,
}

impl ModelGroup {
    /// Every group, in dependency order (users before what they own).
    pub const ALL: [ModelGroup; 5] = [
        ModelGroup::Users,
        ModelGroup::Chats,
        ModelGroup::Files,
        ModelGroup::Workspace,
        ModelGroup::Vectors,
    ];

    /// The lower-case name: `users`, `chats`, `files`, `workspace`, `vectors`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelGroup::Users => "users",
            ModelGroup::Chats => "chats",
            ModelGroup::Files => "files",
            ModelGroup::Workspace => "workspace",
            ModelGroup::Vectors => "vectors",
        }
    }

    /// The upper-case name used in environment variables (`CHATSTORE_CHATS_PHASE`).
    pub fn env_name(self) -> &'static str {
        match self {
            ModelGroup::Users => "USERS",
            ModelGroup::Chats => "CHATS",
            ModelGroup::Files => "FILES",
            ModelGroup::Workspace => "WORKSPACE",
            ModelGroup::Vectors => "VECTORS",
        }
    }
}

impl fmt::Display for ModelGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelGroup {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let name = s.trim().to_ascii_lowercase();
        ModelGroup::ALL
            .into_iter()
            .find(|g| g.as_str() == name)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown model group {s:?}: use one of users, chats, files, workspace, vectors"
                ))
            })
    }
}

/// Parses a comma-separated list of groups (`"users,chats"`), keeping [`ModelGroup::ALL`]'s
/// order and dropping repeats. An empty list is `InvalidInput`.
pub fn parse_groups(list: &str) -> Result<Vec<ModelGroup>> {
    let mut groups = Vec::new();
    for part in list.split(',').filter(|p| !p.trim().is_empty()) {
        let group: ModelGroup = part.parse()?;
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    if groups.is_empty() {
        return Err(Error::invalid(
            "no model group given: use a comma-separated list of users, chats, files, workspace, vectors",
        ));
    }
    groups.sort();
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse_in_dependency_order_without_repeats() {
        let groups = parse_groups("vectors, Chats,users,chats,WORKSPACE").expect("valid list");
        assert_eq!(
            groups,
            [
                ModelGroup::Users,
                ModelGroup::Chats,
                ModelGroup::Workspace,
                ModelGroup::Vectors
            ]
        );
    }

    #[test]
    fn unknown_and_empty_group_lists_are_invalid_input() {
        assert!(matches!(
            parse_groups("users,tags"),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            parse_groups(" , "),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn names_round_trip() {
        for group in ModelGroup::ALL {
            assert_eq!(
                group.as_str().parse::<ModelGroup>().expect("own name"),
                group
            );
            assert_eq!(group.env_name().to_ascii_lowercase(), group.as_str());
        }
    }
}
