//! Users: Open WebUI's `user` table, with the matching `auth` row.
//!
//! Emails are unique case-insensitively with Unicode case folding, like the memory backend.
//! The `uq_user_email_lower` index only folds ASCII on SQLite, so chatstore checks in Rust: the
//! SQL narrows the candidates to the ASCII emails that fold to the same text plus every
//! non-ASCII email, and Rust compares their full lower-case forms. Both halves are index reads:
//! `uq_user_email_lower` finds the first, chatstore's partial `chatstore_user_email_not_ascii`
//! the second (its condition is the statements' own non-ASCII test), so a sign-in or a new user
//! reads a few index entries however many users there are, where it read the whole table.

use async_trait::async_trait;
use chatstore_core::changes::{ChangeEvent, ChangeKind};
use chatstore_core::{
    Error, NewUser, Page, PageRequest, Result, User, UserPatch, UserRepo, validate,
};

use std::collections::HashSet;

use crate::pool::{Arg, Dyn, List, Mode, Row, Sql, Tx, When, args, cursor, page_args, storable};
use crate::{SqlStore, json};

macro_rules! user_columns {
    () => {
        "id, name, email, role, profile_image_url, info, settings, created_at, updated_at, \
         last_active_at"
    };
}

/// Open WebUI writes Python `None` into `oauth` and `scim` as JSON `null`.
const INSERT: Sql = Sql::both(
    "INSERT INTO \"user\" (id, name, email, role, profile_image_url, last_active_at, updated_at, \
     created_at, oauth, info, settings, scim) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'null', $9, $10, 'null')",
);

/// Open WebUI expects an `auth` row per user; an empty password cannot log in. Its three
/// parameters numbered `$1`-`$3`.
macro_rules! insert_auth {
    () => {
        "INSERT INTO auth (id, email, password, active, session_stamp) \
         VALUES ($1, $2, '', TRUE, $3) ON CONFLICT (id) DO NOTHING"
    };
}

const INSERT_AUTH: Sql = Sql::both(insert_auth!());

/// PostgreSQL: [`INSERT_AUTH`] with the transaction's changes recorded and notified.
const INSERT_AUTH_RECORDED: Sql = Sql::both(crate::changes::recorded!(
    insert_auth!(); "$4" "$5" "$6" "$7" "$8" "$9"
));

/// The user's id (to tell a missing user from a missing stamp) and `auth.session_stamp`.
const SESSION_STAMP: Sql = Sql::both(
    "SELECT u.id, a.session_stamp FROM \"user\" u LEFT JOIN auth a ON a.id = u.id WHERE u.id = $1",
);

const GET: Sql = Sql::both(concat!(
    "SELECT ",
    user_columns!(),
    " FROM \"user\" WHERE id = $1"
));

const GET_FOR_UPDATE: Sql = Sql::each(
    concat!("SELECT ", user_columns!(), " FROM \"user\" WHERE id = $1"),
    concat!(
        "SELECT ",
        user_columns!(),
        " FROM \"user\" WHERE id = $1 FOR UPDATE"
    ),
);

/// SQLite: the email holds a character outside ASCII. The condition of the partial index
/// `chatstore_user_email_not_ascii` too: SQLite uses that index only for a statement that
/// writes its condition the same way.
macro_rules! sqlite_email_not_ascii {
    () => {
        "email GLOB '*[^' || char(1) || '-' || char(127) || ']*'"
    };
}

/// PostgreSQL: the same test, and the same index's condition.
macro_rules! pg_email_not_ascii {
    () => {
        r"email ~ '[^\x01-\x7f]'"
    };
}

pub(crate) use {pg_email_not_ascii, sqlite_email_not_ascii};

/// The ids and emails of the users whose ASCII email's lower case is `$1`, and of every user
/// whose email holds a non-ASCII character, in no particular order (only ids and emails: the
/// non-ASCII ones are all read, so each row is kept small).
/// - SQLite reads the two indexes only for a `UNION` (for an `OR` it walks the table), only
///   when the first half says what the `uq_user_email_lower` index's condition says (`email IS
///   NOT NULL`), and only without an `ORDER BY`: without statistics (Open WebUI never runs
///   `ANALYZE`) it would rather walk the key's index for the second half, which is in that
///   order, than read the small partial one and sort.
/// - PostgreSQL reads both for the `OR` (a `BitmapOr`).
const EMAIL_CANDIDATES: Sql = Sql::each(
    concat!(
        "SELECT id, email FROM \"user\" WHERE email IS NOT NULL AND lower(email) = $1 \
         UNION SELECT id, email FROM \"user\" WHERE ",
        sqlite_email_not_ascii!()
    ),
    concat!(
        "SELECT id, email FROM \"user\" WHERE lower(email) = $1 OR ",
        pg_email_not_ascii!()
    ),
);

/// [`EMAIL_CANDIDATES`] for several lower-case emails (`$1`, a list) at once.
const EMAILS_CANDIDATES: Sql = Sql::each(
    concat!(
        "SELECT id, email FROM \"user\" WHERE email IS NOT NULL \
         AND lower(email) IN (SELECT value FROM json_each($1)) \
         UNION SELECT id, email FROM \"user\" WHERE ",
        sqlite_email_not_ascii!()
    ),
    concat!(
        "SELECT id, email FROM \"user\" WHERE lower(email) = ANY($1) OR ",
        pg_email_not_ascii!()
    ),
)
.planned_per_call();

/// Which of the ids (`$1`, a list) are taken.
const TAKEN_IDS: Sql = Sql::each(
    "SELECT id FROM \"user\" WHERE id IN (SELECT value FROM json_each($1))",
    "SELECT id FROM \"user\" WHERE id = ANY($1)",
)
.planned_per_call();

/// The text of the statement that finds the users an email may belong to (`$1`, lower case),
/// in `dialect`. Public so that a test can ask the database how it reads it.
pub fn email_candidates_sql(dialect: crate::Dialect) -> &'static str {
    EMAIL_CANDIDATES.text(dialect)
}

/// The same for several emails at once (`$1`, a list: a PostgreSQL `text[]`, a JSON array on
/// SQLite).
pub fn emails_candidates_sql(dialect: crate::Dialect) -> &'static str {
    EMAILS_CANDIDATES.text(dialect)
}

/// Users per multi-row statement of [`insert_many`] (10 parameters a row).
const USERS_PER_STATEMENT: usize = 2_000;

/// [`INSERT`] and [`INSERT_AUTH`] for many rows: the heads before the rows' values.
const INSERT_MANY_HEAD: &str = "INSERT INTO \"user\" (id, name, email, role, profile_image_url, \
     last_active_at, updated_at, created_at, oauth, info, settings, scim) VALUES ";
const INSERT_AUTHS_HEAD: &str =
    "INSERT INTO auth (id, email, password, active, session_stamp) VALUES ";

/// A user's update, its eight parameters numbered `$1`-`$8`.
macro_rules! update_user {
    () => {
        "UPDATE \"user\" SET name = $2, email = $3, role = $4, profile_image_url = $5, \
         info = COALESCE($6, info), settings = COALESCE($7, settings), updated_at = $8 \
         WHERE id = $1"
    };
}

const UPDATE: Sql = Sql::both(update_user!());

/// PostgreSQL: [`UPDATE`] with the transaction's changes recorded and notified.
const UPDATE_RECORDED: Sql = Sql::both(crate::changes::recorded!(
    update_user!(); "$9" "$10" "$11" "$12" "$13" "$14"
));

const UPDATE_AUTH_EMAIL: Sql = Sql::both("UPDATE auth SET email = $2 WHERE id = $1");

/// Open WebUI's own statement on a signed-in user's requests: no index holds the column, so
/// on PostgreSQL the update stays HOT.
const SET_LAST_ACTIVE: Sql = Sql::both("UPDATE \"user\" SET last_active_at = $2 WHERE id = $1");

/// PostgreSQL: [`SET_LAST_ACTIVE`] and the user's change notified, in one statement outside a
/// transaction (a presence update is not one of the changes catch-up keeps, so nothing is
/// recorded). The notification is sent only when the user exists, and the statement's row
/// count says whether it did.
const SET_LAST_ACTIVE_NOTIFIED: Sql = Sql::both(
    "WITH written AS (UPDATE \"user\" SET last_active_at = $2 WHERE id = $1 RETURNING id) \
     SELECT pg_notify($3, $4) FROM written",
);

const DELETE: Sql = Sql::both("DELETE FROM \"user\" WHERE id = $1");

const DELETE_AUTH: Sql = Sql::both("DELETE FROM auth WHERE id = $1");

const COUNT: Sql = Sql::both("SELECT count(*) AS n FROM \"user\"");

/// A page of users, newest first: read in order from `chatstore_user_list` (`indexes`), whose
/// key is this order's, expression included.
pub(crate) const LIST: Sql = Sql::each(
    concat!(
        "SELECT ",
        user_columns!(),
        " FROM \"user\" ORDER BY COALESCE(created_at, 0) DESC, id LIMIT $1 OFFSET $2"
    ),
    concat!(
        "SELECT ",
        user_columns!(),
        " FROM \"user\" ORDER BY COALESCE(created_at, 0) DESC, id COLLATE \"C\" LIMIT $1 OFFSET $2"
    ),
);

/// The ids of a scan page, read without decoding the rows.
pub(crate) const SCAN_IDS: Sql = Sql::each(
    "SELECT id FROM \"user\" WHERE id > $1 ORDER BY id LIMIT $2",
    "SELECT id FROM \"user\" WHERE id COLLATE \"C\" > $1 ORDER BY id COLLATE \"C\" LIMIT $2",
);

pub(crate) const SCAN: Sql = Sql::each(
    concat!(
        "SELECT ",
        user_columns!(),
        " FROM \"user\" WHERE id > $1 ORDER BY id LIMIT $2"
    ),
    concat!(
        "SELECT ",
        user_columns!(),
        " FROM \"user\" WHERE id COLLATE \"C\" > $1 ORDER BY id COLLATE \"C\" LIMIT $2"
    ),
);

fn user_from_row(row: &Row) -> Result<User> {
    Ok(User {
        id: row.text("id")?,
        email: row.text("email")?,
        name: row.text("name")?,
        role: row
            .opt_text("role")?
            .unwrap_or_else(|| "pending".to_owned()),
        profile_image_url: row
            .opt_text("profile_image_url")?
            .unwrap_or_else(|| "/user.png".to_owned()),
        info: json::parse("user.info", row.json_text("info")?)?,
        settings: json::parse("user.settings", row.json_text("settings")?)?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        last_active_at: row.int("last_active_at")?,
    })
}

/// Whether another user (not `except`) has `email`, compared with Unicode case folding.
async fn email_taken(tx: &mut Tx, email: &str, except: Option<&str>) -> Result<bool> {
    let wanted = email.to_lowercase();
    let rows = tx
        .fetch_all(EMAIL_CANDIDATES, args![wanted.as_str()])
        .await?;
    Ok(holders(&rows, &wanted)?
        .iter()
        .any(|id| Some(id.as_str()) != except))
}

/// The ids of the [`EMAIL_CANDIDATES`] rows whose email folds to `wanted` (lower case).
fn holders(rows: &[Row], wanted: &str) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for row in rows {
        if row.text("email")?.to_lowercase() == wanted {
            ids.push(row.text("id")?);
        }
    }
    Ok(ids)
}

async fn insert(tx: &mut Tx, user: NewUser) -> Result<User> {
    let user = user.into_user(validate::now())?;
    if tx
        .fetch_optional(GET, args![user.id.as_str()])
        .await?
        .is_some()
    {
        return Err(Error::conflict("user", format!("id {:?} exists", user.id)));
    }
    if email_taken(tx, &user.email, None).await? {
        return Err(Error::conflict(
            "user",
            format!("email {:?} is taken", user.email),
        ));
    }
    tx.execute(
        INSERT,
        args![
            user.id.as_str(),
            user.name.as_str(),
            user.email.as_str(),
            user.role.as_str(),
            user.profile_image_url.as_str(),
            user.last_active_at,
            user.updated_at,
            user.created_at,
            json::arg(user.info.as_ref()),
            json::arg(user.settings.as_ref()),
        ],
    )
    .await?;
    // Announced before the last statement, so that the feed's statement rides on it
    // (PostgreSQL).
    tx.announce(ChangeEvent::user(ChangeKind::Created, &user));
    tx.execute_recording(
        When::Now,
        INSERT_AUTH,
        INSERT_AUTH_RECORDED,
        args![user.id.as_str(), user.email.as_str(), validate::new_id(),],
    )
    .await?;
    Ok(user)
}

/// Creates several users with multi-row statements: the checks [`insert`] makes for each (id
/// and email free, also within the batch) in two reads for all, then the `user` and `auth`
/// rows. The first user that cannot be created, in order, gives the error, as one by one.
async fn insert_many(tx: &mut Tx, users: Vec<NewUser>) -> Result<Vec<User>> {
    let now = validate::now();
    let users = users
        .into_iter()
        .map(|u| u.into_user(now))
        .collect::<Result<Vec<User>>>()?;
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let wanted: Vec<String> = users.iter().map(|u| u.email.to_lowercase()).collect();
    let mut taken_ids = HashSet::new();
    for row in tx
        .fetch_all(TAKEN_IDS, vec![Arg::List(List::Text(ids))])
        .await?
    {
        taken_ids.insert(row.text("id")?);
    }
    let mut taken_emails = HashSet::new();
    for row in tx
        .fetch_all(
            EMAILS_CANDIDATES,
            vec![Arg::List(List::Text(wanted.clone()))],
        )
        .await?
    {
        taken_emails.insert(row.text("email")?.to_lowercase());
    }
    for (user, email) in users.iter().zip(wanted) {
        if !taken_ids.insert(user.id.clone()) {
            return Err(Error::conflict("user", format!("id {:?} exists", user.id)));
        }
        if !taken_emails.insert(email) {
            return Err(Error::conflict(
                "user",
                format!("email {:?} is taken", user.email),
            ));
        }
    }
    for chunk in users.chunks(USERS_PER_STATEMENT) {
        let mut d = Dyn::default();
        d.sql(INSERT_MANY_HEAD);
        for (k, user) in chunk.iter().enumerate() {
            d.sql(if k == 0 { "(" } else { ", (" });
            d.bind(user.id.as_str())
                .sql(", ")
                .bind(user.name.as_str())
                .sql(", ")
                .bind(user.email.as_str())
                .sql(", ")
                .bind(user.role.as_str())
                .sql(", ")
                .bind(user.profile_image_url.as_str())
                .sql(", ")
                .bind(user.last_active_at)
                .sql(", ")
                .bind(user.updated_at)
                .sql(", ")
                .bind(user.created_at)
                .sql(", 'null', ")
                .bind(json::arg(user.info.as_ref()))
                .sql(", ")
                .bind(json::arg(user.settings.as_ref()))
                .sql(", 'null')");
        }
        d.one_off();
        tx.execute_dyn(d).await?;
        let mut d = Dyn::default();
        d.sql(INSERT_AUTHS_HEAD);
        for (k, user) in chunk.iter().enumerate() {
            d.sql(if k == 0 { "(" } else { ", (" });
            d.bind(user.id.as_str())
                .sql(", ")
                .bind(user.email.as_str())
                .sql(", '', TRUE, ")
                .bind(validate::new_id())
                .sql(")");
        }
        d.sql(" ON CONFLICT (id) DO NOTHING").one_off();
        tx.execute_dyn(d).await?;
    }
    for user in &users {
        tx.announce(ChangeEvent::user(ChangeKind::Created, user));
    }
    Ok(users)
}

#[async_trait]
impl UserRepo for SqlStore {
    async fn create(&self, user: NewUser) -> Result<User> {
        let mut tx = self.begin("user", Mode::Write).await?;
        let user = insert(&mut tx, user).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn create_many(&self, users: Vec<NewUser>) -> Result<Vec<User>> {
        let mut tx = self.begin("user", Mode::Write).await?;
        let out = if users.len() > 1 {
            insert_many(&mut tx, users).await?
        } else {
            let mut out = Vec::with_capacity(users.len());
            for user in users {
                out.push(insert(&mut tx, user).await?);
            }
            out
        };
        tx.commit().await?;
        Ok(out)
    }

    async fn get(&self, id: &str) -> Result<User> {
        if !storable(id) {
            return Err(Error::not_found("user", id));
        }
        match self.pool().fetch_optional("user", GET, args![id]).await? {
            Some(row) => user_from_row(&row),
            None => Err(Error::not_found("user", id)),
        }
    }

    async fn session_stamp(&self, id: &str) -> Result<Option<String>> {
        if !storable(id) {
            return Err(Error::not_found("user", id));
        }
        match self
            .pool()
            .fetch_optional("user", SESSION_STAMP, args![id])
            .await?
        {
            Some(row) => row.opt_text("session_stamp"),
            None => Err(Error::not_found("user", id)),
        }
    }

    async fn get_by_email(&self, email: &str) -> Result<User> {
        if !storable(email) {
            return Err(Error::not_found("user", email));
        }
        let wanted = email.to_lowercase();
        let rows = self
            .pool()
            .fetch_all("user", EMAIL_CANDIDATES, args![wanted.as_str()])
            .await?;
        // The candidates come in no order; of several users the email fits (written around
        // chatstore's check), the one with the smallest id, whatever the engine.
        match holders(&rows, &wanted)?.into_iter().min() {
            // Deleted since: not found, as a lookup after the deletion would say.
            Some(id) => UserRepo::get(self, &id).await,
            None => Err(Error::not_found("user", email)),
        }
    }

    async fn update(&self, id: &str, patch: UserPatch) -> Result<User> {
        if !storable(id) {
            return Err(Error::not_found("user", id));
        }
        let mut tx = self.begin("user", Mode::Write).await?;
        let row = tx
            .fetch_optional(GET_FOR_UPDATE, args![id])
            .await?
            .ok_or_else(|| Error::not_found("user", id))?;
        let mut user = user_from_row(&row)?;
        let old_email = user.email.clone();
        patch.apply(&mut user, validate::now())?;
        if patch.email.is_some() && email_taken(&mut tx, &user.email, Some(id)).await? {
            return Err(Error::conflict(
                "user",
                format!("email {:?} is taken", user.email),
            ));
        }
        // Announced first, so that the feed's statement rides on the update (PostgreSQL).
        tx.announce(ChangeEvent::user(ChangeKind::Updated, &user));
        tx.execute_recording(
            When::Now,
            UPDATE,
            UPDATE_RECORDED,
            args![
                id,
                user.name.as_str(),
                user.email.as_str(),
                user.role.as_str(),
                user.profile_image_url.as_str(),
                json::opt_arg(patch.info.as_ref()),
                json::opt_arg(patch.settings.as_ref()),
                user.updated_at,
            ],
        )
        .await?;
        if user.email != old_email {
            tx.execute(UPDATE_AUTH_EMAIL, args![id, user.email.as_str()])
                .await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    async fn set_last_active(&self, id: &str, at: i64) -> Result<()> {
        if !storable(id) {
            return Err(Error::not_found("user", id));
        }
        let event = ChangeEvent::user_ids(ChangeKind::Updated, id);
        if self.dialect() == crate::Dialect::Postgres {
            // One round trip where a transaction took four (Open WebUI's heartbeats write this
            // once a minute per signed-in user).
            let payload = crate::changes::payload(&event)?;
            let args = args![id, at, crate::changes::CHANNEL, payload];
            return match self
                .pool()
                .execute("user", SET_LAST_ACTIVE_NOTIFIED, args)
                .await?
            {
                0 => Err(Error::not_found("user", id)),
                _ => Ok(()),
            };
        }
        let mut tx = self.begin("user", Mode::Write).await?;
        if tx.execute(SET_LAST_ACTIVE, args![id, at]).await? == 0 {
            return Err(Error::not_found("user", id));
        }
        tx.announce(event);
        tx.commit().await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        if !storable(id) {
            return Err(Error::not_found("user", id));
        }
        let mut tx = self.begin("user", Mode::Write).await?;
        if tx.execute(DELETE, args![id]).await? == 0 {
            return Err(Error::not_found("user", id));
        }
        tx.execute(DELETE_AUTH, args![id]).await?;
        tx.announce(ChangeEvent::user_deleted(id));
        tx.commit().await
    }

    async fn list(&self, page: PageRequest) -> Result<Page<User>> {
        let (limit, offset) = page_args(&page);
        let mut tx = self.begin("user", Mode::Read).await?;
        let total = tx.fetch_one(COUNT, args![]).await?.int("n")?;
        let items = tx
            .fetch_all(LIST, args![limit, offset])
            .await?
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(Page {
            items,
            total: u64::try_from(total).unwrap_or_default(),
        })
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
        self.pool()
            .fetch_all("user", SCAN, args![cursor(after), i64::from(limit)])
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        self.pool()
            .fetch_all("user", SCAN_IDS, args![cursor(after), i64::from(limit)])
            .await?
            .iter()
            .map(|r| r.text("id"))
            .collect()
    }
}
