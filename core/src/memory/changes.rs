use async_trait::async_trait;

use super::MemoryBackend;
use crate::Result;
use crate::changes::{ChangeEvent, ChangeFeed, ChangeHub, ChangeKind};

#[async_trait]
impl ChangeFeed for MemoryBackend {
    fn hub(&self) -> &ChangeHub {
        &self.hub
    }

    fn hears_other_processes(&self) -> bool {
        false
    }

    async fn changes_since(
        &self,
        since_secs: i64,
        user_id: Option<&str>,
    ) -> Result<Vec<ChangeEvent>> {
        let s = self.lock()?;
        let mine = |owner: &str| user_id.is_none_or(|u| u == owner);
        let mut out: Vec<ChangeEvent> = Vec::new();
        for user in s.users.values() {
            if user.updated_at >= since_secs && mine(&user.id) {
                out.push(ChangeEvent::user(ChangeKind::Updated, user).read_back(user.updated_at));
            }
        }
        for chat in s.chats.values() {
            if chat.updated_at >= since_secs && mine(&chat.user_id) {
                out.push(
                    ChangeEvent::chat(ChangeKind::Updated, chat, &[]).read_back(chat.updated_at),
                );
            }
        }
        for ((chat_id, _), message) in &s.messages {
            if message.updated_at < since_secs {
                continue;
            }
            if let Some(chat) = s.chats.get(chat_id)
                && mine(&chat.user_id)
            {
                out.push(
                    ChangeEvent::message(ChangeKind::Updated, &chat.user_id, message)
                        .read_back(message.updated_at),
                );
            }
        }
        for (meta, _) in s.files.values() {
            if meta.updated_at >= since_secs && mine(&meta.user_id) {
                out.push(ChangeEvent::file(ChangeKind::Updated, meta).read_back(meta.updated_at));
            }
        }
        let since_ms = since_secs.saturating_mul(1000);
        out.extend(
            s.tombstones
                .iter()
                .filter(|t| t.at >= since_ms && mine(&t.user_id))
                .cloned(),
        );
        out.sort_by_key(|e| e.at);
        Ok(out)
    }
}
