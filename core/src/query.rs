//! Pagination and the query structs of list operations.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which slice of an ordered list to return. `limit: None` means "all the rest".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PageRequest {
    /// How many items of the ordered list to skip.
    pub offset: u64,
    /// How many items to return at most; `None` returns every remaining item.
    pub limit: Option<u64>,
}

impl PageRequest {
    /// The first `limit` items.
    pub fn first(limit: u64) -> Self {
        PageRequest {
            offset: 0,
            limit: Some(limit),
        }
    }

    /// `limit` items after skipping `offset`.
    pub fn new(offset: u64, limit: u64) -> Self {
        PageRequest {
            offset,
            limit: Some(limit),
        }
    }

    /// Checks the request: a limit of 0 asks for nothing and is refused; offsets and limits
    /// beyond `i64::MAX` cannot be passed to SQL.
    pub fn validate(&self) -> Result<()> {
        if self.limit == Some(0) {
            return Err(Error::invalid(
                "page limit must be at least 1 (use None for no limit)",
            ));
        }
        if self.offset > i64::MAX as u64 || self.limit.is_some_and(|l| l > i64::MAX as u64) {
            return Err(Error::invalid("page offset and limit must fit in i64"));
        }
        Ok(())
    }

    /// Applies the request to an already ordered vector (the memory backend's way).
    pub fn slice<T>(&self, items: Vec<T>) -> Vec<T> {
        let offset = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let iter = items.into_iter().skip(offset);
        match self.limit {
            Some(limit) => iter
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .collect(),
            None => iter.collect(),
        }
    }
}

/// One page of an ordered list and the total number of matching items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of the page, in order.
    pub items: Vec<T>,
    /// How many items match the query in all pages.
    pub total: u64,
}

/// How many records a keyset scan returns at most per call.
pub const MAX_SCAN_LIMIT: u32 = 10_000;

/// Checks a keyset scan's limit.
pub fn validate_scan_limit(limit: u32) -> Result<()> {
    if limit == 0 || limit > MAX_SCAN_LIMIT {
        return Err(Error::invalid(format!(
            "scan limit must be between 1 and {MAX_SCAN_LIMIT}, got {limit}"
        )));
    }
    Ok(())
}

/// Which chats to list by their tags.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TagFilter {
    /// Tags do not matter.
    #[default]
    Any,
    /// Chats that have every one of these tags (names or ids; normalised to ids).
    AllOf(Vec<String>),
    /// Chats that have no tag at all (`tag:none`).
    Untagged,
}

/// Which chats to list by their folder.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FolderFilter {
    /// Folders do not matter.
    #[default]
    Any,
    /// Chats in no folder.
    NoFolder,
    /// Chats in this folder.
    In(String),
}

/// The order of a chat list. Every order ends with `id` ascending, so it is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ChatOrder {
    /// `updated_at DESC, id` (the default everywhere).
    #[default]
    UpdatedDesc,
    /// `created_at DESC, id`.
    CreatedDesc,
    /// `title ASC, id` (byte order of the title).
    TitleAsc,
}

/// Where a chat list resumes (keyset paging): the sort key and id of the last chat of the
/// previous page. A cursor holds the values, not just the id, so a page stays where it was
/// when that chat changes or goes away meanwhile.
///
/// ```
/// use chatstore_core::{ChatCursor, ChatOrder, ChatQuery, PageRequest};
/// # fn next_page(last: &chatstore_core::ChatSummary) -> ChatQuery {
/// let order = ChatOrder::UpdatedDesc;
/// ChatQuery::for_user(&last.user_id)
///     .order(order)
///     .page(PageRequest::first(60))
///     .after(ChatCursor::after(last, order))
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatCursor {
    /// After the chat `id` updated at `updated_at`, in [`ChatOrder::UpdatedDesc`].
    Updated {
        /// The chat's `updated_at`.
        updated_at: i64,
        /// The chat's id.
        id: String,
    },
    /// After the chat `id` created at `created_at`, in [`ChatOrder::CreatedDesc`].
    Created {
        /// The chat's `created_at`.
        created_at: i64,
        /// The chat's id.
        id: String,
    },
    /// After the chat `id` titled `title`, in [`ChatOrder::TitleAsc`].
    Title {
        /// The chat's title as lists show it.
        title: String,
        /// The chat's id.
        id: String,
    },
}

impl ChatCursor {
    /// The cursor just after `chat` in `order`.
    pub fn after(chat: &crate::ChatSummary, order: ChatOrder) -> Self {
        let id = chat.id.clone();
        match order {
            ChatOrder::UpdatedDesc => ChatCursor::Updated {
                updated_at: chat.updated_at,
                id,
            },
            ChatOrder::CreatedDesc => ChatCursor::Created {
                created_at: chat.created_at,
                id,
            },
            ChatOrder::TitleAsc => ChatCursor::Title {
                title: chat.title.clone(),
                id,
            },
        }
    }

    /// The order the cursor was taken in.
    pub fn order(&self) -> ChatOrder {
        match self {
            ChatCursor::Updated { .. } => ChatOrder::UpdatedDesc,
            ChatCursor::Created { .. } => ChatOrder::CreatedDesc,
            ChatCursor::Title { .. } => ChatOrder::TitleAsc,
        }
    }

    /// The id of the chat the cursor was taken at.
    pub fn id(&self) -> &str {
        match self {
            ChatCursor::Updated { id, .. }
            | ChatCursor::Created { id, .. }
            | ChatCursor::Title { id, .. } => id,
        }
    }

    /// Whether a chat with these values comes after the cursor, by the order's rule (ties
    /// on the key broken by the id's bytes).
    pub fn admits(&self, id: &str, updated_at: i64, created_at: i64, title: &str) -> bool {
        use std::cmp::Ordering;
        let key = match self {
            ChatCursor::Updated { updated_at: at, .. } => at.cmp(&updated_at),
            ChatCursor::Created { created_at: at, .. } => at.cmp(&created_at),
            ChatCursor::Title { title: t, .. } => title.cmp(t.as_str()),
        };
        match key {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => id > self.id(),
        }
    }

    /// Checks the cursor against the list's order.
    fn validate(&self, order: ChatOrder) -> Result<()> {
        if self.order() != order {
            return Err(Error::invalid(format!(
                "the cursor was taken in the order {:?} but the list is in the order {order:?}; \
                 take the cursor with ChatCursor::after(chat, order) in the list's order",
                self.order()
            )));
        }
        crate::validate::text("cursor id", self.id())?;
        if let ChatCursor::Title { title, .. } = self {
            crate::validate::text("cursor title", title)?;
        }
        Ok(())
    }
}

/// A list of one user's chats. Internal chats (`meta.internal = true`) are not listed, unless
/// `include_internal` asks for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatQuery {
    /// Whose chats.
    pub user_id: String,
    /// `Some(false)` (the default) hides archived chats, `Some(true)` lists only them, `None` both.
    pub archived: Option<bool>,
    /// `Some(b)` lists only chats whose `pinned` is `b`.
    pub pinned: Option<bool>,
    /// Folder filter.
    pub folder: FolderFilter,
    /// Tag filter.
    pub tags: TagFilter,
    /// Case-insensitive (Unicode) substring of the title.
    pub title: Option<String>,
    /// Order of the list.
    pub order: ChatOrder,
    /// Which page.
    pub page: PageRequest,
    /// Keyset paging: only the chats that come after this one in the list's order (the page's
    /// offset then counts from there, and a total counts only these). A deep page by cursor
    /// costs what the first page costs, where an offset costs every chat it skips. `None`
    /// (the default) starts at the beginning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ChatCursor>,
    /// Lists internal chats too (`false`, the default: never, as every Open WebUI list). For
    /// work on every chat of a user, such as deleting a folder's chats, which Open WebUI does
    /// by `folder_id` alone.
    #[serde(default)]
    pub include_internal: bool,
}

impl ChatQuery {
    /// All non-archived chats of `user_id`, newest first.
    pub fn for_user(user_id: impl Into<String>) -> Self {
        ChatQuery {
            user_id: user_id.into(),
            archived: Some(false),
            pinned: None,
            folder: FolderFilter::Any,
            tags: TagFilter::Any,
            title: None,
            order: ChatOrder::UpdatedDesc,
            page: PageRequest::default(),
            after: None,
            include_internal: false,
        }
    }

    /// Resumes the list after `cursor` (see [`ChatQuery::after`]); take it with
    /// [`ChatCursor::after`] from the last chat of the previous page, in the same order.
    pub fn after(mut self, cursor: ChatCursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// Internal chats too (`true`), or not (`false`, the default).
    pub fn internal(mut self, include: bool) -> Self {
        self.include_internal = include;
        self
    }

    /// Only chats having all of these tags (names are normalised to tag ids).
    pub fn with_tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = TagFilter::AllOf(tags.into_iter().map(Into::into).collect());
        self
    }

    /// Only chats with no tag.
    pub fn untagged(mut self) -> Self {
        self.tags = TagFilter::Untagged;
        self
    }

    /// Only chats whose title contains `text`, case-insensitively.
    pub fn with_title(mut self, text: impl Into<String>) -> Self {
        self.title = Some(text.into());
        self
    }

    /// Archived filter (`None` lists archived and active chats).
    pub fn archived(mut self, archived: Option<bool>) -> Self {
        self.archived = archived;
        self
    }

    /// Pinned filter.
    pub fn pinned(mut self, pinned: Option<bool>) -> Self {
        self.pinned = pinned;
        self
    }

    /// Folder filter.
    pub fn folder(mut self, folder: FolderFilter) -> Self {
        self.folder = folder;
        self
    }

    /// Order.
    pub fn order(mut self, order: ChatOrder) -> Self {
        self.order = order;
        self
    }

    /// Page.
    pub fn page(mut self, page: PageRequest) -> Self {
        self.page = page;
        self
    }

    /// Checks the query and returns the tag ids of its tag filter, normalised.
    pub fn validate(&self) -> Result<Vec<String>> {
        crate::validate::id("user_id", &self.user_id)?;
        self.page.validate()?;
        if let FolderFilter::In(folder) = &self.folder {
            crate::validate::id("folder_id", folder)?;
        }
        if let Some(title) = &self.title {
            crate::validate::text("title filter", title)?;
        }
        if let Some(cursor) = &self.after {
            cursor.validate(self.order)?;
        }
        match &self.tags {
            TagFilter::AllOf(names) => {
                if names.is_empty() {
                    return Err(Error::invalid(
                        "tag filter AllOf needs at least one tag; use TagFilter::Any for no filter",
                    ));
                }
                for name in names {
                    crate::tags::tag_id_checked(name)?;
                }
                Ok(self.tag_ids())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The tag ids of an `AllOf` tag filter, sorted, each once (empty for other filters); for
    /// backends, behind the validation layer that ran [`ChatQuery::validate`].
    pub fn tag_ids(&self) -> Vec<String> {
        match &self.tags {
            TagFilter::AllOf(names) => {
                let mut ids: Vec<String> = names.iter().map(|n| crate::tags::tag_id(n)).collect();
                ids.sort();
                ids.dedup();
                ids
            }
            _ => Vec::new(),
        }
    }
}

/// A list of files.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileQuery {
    /// Only this user's files; `None` lists everyone's.
    pub user_id: Option<String>,
    /// Which page, in the order `updated_at DESC, id`.
    pub page: PageRequest,
}
