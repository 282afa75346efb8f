//! Conversation sessions: what the bot remembers about one member in one chat.
//!
//! Trees (declared here only):
//! - `sessions`: `(String member, String chat key)` → [`Session`]. The chat key is
//!   `channel/chat_id` (`app/zhangsan`, `bot/wrGroup01`), so two members in one group have
//!   two sessions and never see each other's dialog.
//! - `member_dialogs`: `String member` → `Vec<String>` chat keys with a dialog running, so an
//!   image sent to the app one-to-one can reach a dialog waiting for screenshots in a group
//!   (a group cannot carry a standalone image to the bot).

use serde::{Deserialize, Serialize};

use crate::script::eval::Dialog;
use crate::store::trees;
use crate::store::{self, Abort, Record, Store, Tree, Tx};

/// What the bot last asked outside a dialog, so a short answer ("1", "已解决") is understood.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Pending {
    /// "是否解决了您的问题？" after an FAQ answer.
    FaqFeedback {
        log_id: u64,
        question: String,
        entry_id: String,
    },
    /// "您有几个工单正在处理，这条消息补充到哪一个？" with the message kept until answered.
    FollowUpChoice {
        tickets: Vec<u64>,
        text: String,
        images: Vec<String>,
    },
    /// "您是不是想问：1… 2… 3…"
    FaqChoice {
        log_id: u64,
        question: String,
        entries: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Session {
    #[serde(default)]
    pub dialog: Option<Dialog>,
    #[serde(default)]
    pub pending: Option<Pending>,
    /// The member's last free text and when (unix ms): a burst of screenshots that follows
    /// it within `conversation.burst_window` keeps it as the description.
    #[serde(default)]
    pub last_text: Option<(String, i64)>,
    /// Unix ms of the last message.
    #[serde(default)]
    pub last_active: i64,
    /// The ticket the member chose for follow-ups when several were in conversation.
    #[serde(default)]
    pub follow_up: Option<u64>,
}

impl Record for Session {}

impl Session {
    pub fn is_empty(&self) -> bool {
        self.dialog.is_none()
            && self.pending.is_none()
            && self.last_text.is_none()
            && self.follow_up.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct Sessions {
    sessions: Tree<(String, String), Session>,
    dialogs: Tree<String, Vec<String>>,
}

impl Sessions {
    pub fn open(store: &Store) -> store::Result<Sessions> {
        Ok(Sessions {
            sessions: store.tree(&trees::SESSIONS)?,
            dialogs: store.tree(&trees::MEMBER_DIALOGS)?,
        })
    }

    pub fn trees(&self) -> [&dyn store::AnyTree; 2] {
        [&self.sessions, &self.dialogs]
    }

    pub fn get<E>(&self, tx: &Tx<'_>, member: &str, chat: &str) -> Result<Session, Abort<E>> {
        Ok(tx
            .get(&self.sessions, &(member.to_owned(), chat.to_owned()))?
            .unwrap_or_default())
    }

    /// Save (or drop, when empty) a session and keep the member's dialog index in step.
    pub fn put<E>(
        &self,
        tx: &Tx<'_>,
        member: &str,
        chat: &str,
        s: &Session,
    ) -> Result<(), Abort<E>> {
        let key = (member.to_owned(), chat.to_owned());
        if s.is_empty() {
            tx.remove(&self.sessions, &key)?;
        } else {
            tx.insert(&self.sessions, &key, s)?;
        }
        let mut index = tx
            .get(&self.dialogs, &member.to_owned())?
            .unwrap_or_default();
        let had = index.iter().any(|c| c == chat);
        match (s.dialog.is_some(), had) {
            (true, false) => index.push(chat.to_owned()),
            (false, true) => index.retain(|c| c != chat),
            _ => return Ok(()),
        }
        if index.is_empty() {
            tx.remove(&self.dialogs, &member.to_owned())?;
        } else {
            tx.insert(&self.dialogs, &member.to_owned(), &index)?;
        }
        Ok(())
    }

    /// Chat keys where `member` has a dialog running.
    pub fn dialogs_of<E>(&self, tx: &Tx<'_>, member: &str) -> Result<Vec<String>, Abort<E>> {
        Ok(tx
            .get(&self.dialogs, &member.to_owned())?
            .unwrap_or_default())
    }

    /// Read a session outside a transaction (the worker's prepare step).
    pub fn peek(&self, member: &str, chat: &str) -> store::Result<Option<Session>> {
        self.sessions.get(&(member.to_owned(), chat.to_owned()))
    }
}
