use crate::changes::{ChangeEvent, ChangeKind};
use async_trait::async_trait;

use super::{MemoryBackend, State};
use crate::query::{Page, PageRequest};
use crate::users::{NewUser, User, UserPatch, UserRepo};
use crate::{Error, Result, validate};

fn email_taken(state: &State, email: &str, except: Option<&str>) -> bool {
    let wanted = email.to_lowercase();
    state
        .users
        .values()
        .any(|u| Some(u.id.as_str()) != except && u.email.to_lowercase() == wanted)
}

fn insert(state: &mut State, user: NewUser) -> Result<User> {
    let user = user.into_user(validate::now())?;
    if state.users.contains_key(&user.id) {
        return Err(Error::conflict("user", format!("id {:?} exists", user.id)));
    }
    if email_taken(state, &user.email, None) {
        return Err(Error::conflict(
            "user",
            format!("email {:?} is taken", user.email),
        ));
    }
    state.users.insert(user.id.clone(), user.clone());
    state.announce(ChangeEvent::user(ChangeKind::Created, &user));
    Ok(user)
}

#[async_trait]
impl UserRepo for MemoryBackend {
    async fn create(&self, user: NewUser) -> Result<User> {
        self.write(|s| insert(s, user))
    }

    async fn create_many(&self, users: Vec<NewUser>) -> Result<Vec<User>> {
        self.transaction(|s| users.into_iter().map(|u| insert(s, u)).collect())
    }

    async fn session_stamp(&self, _id: &str) -> Result<Option<String>> {
        // Credentials are Open WebUI's `auth` table; the memory model keeps none.
        Err(Error::unsupported("memory", "users.session_stamp"))
    }

    async fn get(&self, id: &str) -> Result<User> {
        let s = self.lock()?;
        s.users
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("user", id))
    }

    async fn get_by_email(&self, email: &str) -> Result<User> {
        let wanted = email.to_lowercase();
        let s = self.lock()?;
        s.users
            .values()
            .find(|u| u.email.to_lowercase() == wanted)
            .cloned()
            .ok_or_else(|| Error::not_found("user", email))
    }

    async fn update(&self, id: &str, patch: UserPatch) -> Result<User> {
        self.write(|s| {
            let mut user = s
                .users
                .get(id)
                .cloned()
                .ok_or_else(|| Error::not_found("user", id))?;
            patch.apply(&mut user, validate::now())?;
            if patch.email.is_some() && email_taken(s, &user.email, Some(id)) {
                return Err(Error::conflict(
                    "user",
                    format!("email {:?} is taken", user.email),
                ));
            }
            s.users.insert(id.to_owned(), user.clone());
            s.announce(ChangeEvent::user(ChangeKind::Updated, &user));
            Ok(user)
        })
    }

    async fn set_last_active(&self, id: &str, at: i64) -> Result<()> {
        self.write(|s| {
            let user = s
                .users
                .get_mut(id)
                .ok_or_else(|| Error::not_found("user", id))?;
            user.last_active_at = at;
            s.announce(ChangeEvent::user_ids(ChangeKind::Updated, id));
            Ok(())
        })
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.write(|s| {
            s.users
                .remove(id)
                .ok_or_else(|| Error::not_found("user", id))?;
            s.announce(ChangeEvent::user_deleted(id));
            Ok(())
        })
    }

    async fn list(&self, page: PageRequest) -> Result<Page<User>> {
        let s = self.lock()?;
        let mut users: Vec<User> = s.users.values().cloned().collect();
        users.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        let total = users.len() as u64;
        Ok(Page {
            items: page.slice(users),
            total,
        })
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
        let s = self.lock()?;
        Ok(s.users
            .values()
            .filter(|u| after.is_none_or(|a| u.id.as_str() > a))
            .take(limit as usize)
            .cloned()
            .collect())
    }
}
