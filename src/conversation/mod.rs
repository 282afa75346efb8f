//! Conversations: the worker that drains the inbox, and what the bot does with each message.
//!
//! Processing is split in two so that sled's transaction lock is taken once per *batch*:
//! - [`Engine::prepare`] does the slow, state-independent work outside any transaction:
//!   download and store screenshots (fsynced before anything refers to them), take the
//!   member's cached name (looked up off the ordered path by [`names`]), snapshot the
//!   member's tickets, search the FAQ.
//! - [`Engine::apply`] decides and writes, purely, inside the worker's transaction: the
//!   inbox item is completed, the session, tickets and outbox jobs are written — all or
//!   nothing. Several messages are applied in one transaction, in arrival order, each seeing
//!   the writes of the ones before it.
//!
//! Files:
//! - [`worker`]: the loop that takes batches from the inbox, commits them, and isolates a
//!   failing message (retried, then dead-lettered) so it cannot block the others;
//! - `route`: [`Engine::apply`] and the routing of one message (see below), as methods on
//!   one `Turn`;
//! - `faq`: the FAQ-first policy and the answers to its questions;
//! - `followup`: ratings, supplements to a ticket, progress;
//! - [`session`], [`media`]: what the bot remembers per chat; screenshot download.
//!
//! Routing of a message (first match wins):
//! 1. global words (取消, 重新开始, 帮助, 人工, 进度) — at any step;
//! 2. a running dialog takes the input (text, screenshots, or both);
//! 3. card clicks and rating words rate a resolved ticket; `补充 <工单号> …` adds to a ticket;
//!    text or images while a ticket is 待补充 go into its thread;
//! 4. a flow's trigger word starts it; screenshots without a dialog start the report flow,
//!    keeping the text sent just before as the description (a burst);
//! 5. anything else is a question for the FAQ: answered above `faq.answer_threshold` (with
//!    "是否解决了您的问题？"), offered as a numbered choice above `faq.suggest_threshold`,
//!    otherwise the intake is offered. "未解决" starts the intake with the question kept as
//!    the description. Every question is logged with its hits, decision and feedback.
//!
//! A storage error is never read as "nothing there": [`Engine::prepare`] and
//! [`Engine::apply`] return it, and the worker retries the message or dead-letters it; the
//! agent is never told something false.

mod faq;
mod followup;
pub mod media;
pub mod names;
mod route;
pub mod session;
#[cfg(test)]
mod tests;
pub mod worker;

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::config::FaqConfig;
use crate::inbox::{Inbox, InboxItem};
use crate::incidents::Incidents;
use crate::kb::log::FaqLog;
use crate::kb::{Hit, Kb};
use crate::outbox::Outbox;
use crate::script::Scripts;
use crate::store::{self, AnyTree, Store, TxError};
use crate::tickets::{Ticket, Tickets};
use crate::wecom::client::Client;
use crate::wecom::outbound::{Destination, Message};
use crate::wecom::{Channel, ChatType, Content, Inbound, MediaRef};

use media::{Fetcher, ImageError};
use names::NameLookups;
use session::Sessions;

pub use worker::Worker;

/// What the bot can do, in the words the agent sees.
pub const HELP_TEXT: &str = "您好，我是事件助手，可以帮您：\n\
1. 解答常见问题：直接描述问题，例如“银证转账失败怎么办”\n\
2. 上报问题：发送“提单”，按提示提供客户号/身份证号/手机号、所属系统、问题描述和截图\n\
3. 查询进度：发送“进度”\n\
4. 补充材料：发送“补充 工单号 内容”\n\
处理过程中可随时发送“取消”结束当前操作，发送“人工”联系处理人员。";

fn media_is_empty(content: &Content) -> bool {
    content.images().is_empty() && !matches!(content, Content::File { .. })
}

/// Where replies to `inbound` go: the app chat for app messages, the `response_url` for AI
/// bot messages (falling back to the app when it is spent).
pub fn reply_destination(inbound: &Inbound) -> Destination {
    match (inbound.channel, &inbound.response_url) {
        (Channel::Bot, Some(url)) => Destination::BotResponse {
            url: url.clone(),
            fallback_userid: inbound.sender.clone(),
        },
        _ => Destination::Member {
            userid: inbound.sender.clone(),
        },
    }
}

/// Combine replies for one inbound message. An AI-bot `response_url` takes a single message,
/// so its replies are joined (and in a group they @ the member).
pub fn shape_replies(inbound: &Inbound, replies: Vec<String>) -> Vec<Message> {
    if replies.is_empty() {
        return Vec::new();
    }
    match inbound.channel {
        Channel::Bot => {
            let mut text = replies.join("\n\n");
            if inbound.chat_type == ChatType::Group {
                text = format!("<@{}> {text}", inbound.sender);
            }
            vec![Message::Markdown { content: text }]
        }
        Channel::App => replies.into_iter().map(Message::text).collect(),
    }
}

/// Settings the engine reads.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub faq: FaqConfig,
    pub idle_timeout: Duration,
    pub burst_window: Duration,
    /// How long an agent's free text stays a follow-up of a ticket a handler spoke about.
    pub follow_up_window: Duration,
    pub customer_no: regex::Regex,
    pub utc_offset: chrono::FixedOffset,
}

impl EngineSettings {
    pub fn from_config(cfg: &crate::config::Config) -> EngineSettings {
        EngineSettings {
            faq: cfg.faq.clone(),
            idle_timeout: cfg.conversation.idle_timeout,
            burst_window: cfg.conversation.burst_window,
            follow_up_window: cfg.conversation.follow_up_window,
            customer_no: cfg.tickets.customer_no_pattern.clone(),
            utc_offset: cfg.utc_offset(),
        }
    }
}

/// What [`Engine::prepare`] gathered for one message.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// One entry per image (or file) in the message: its stored hash, or why not.
    pub images: Vec<Result<String, ImageError>>,
    /// The sender's display name.
    pub name: String,
    /// "张三（zhangsan）" for notices to handlers.
    pub label: String,
    /// The sender's tickets, newest first (re-checked inside the transaction).
    pub tickets: Vec<Ticket>,
    /// For `补充 <工单号> …`: the named ticket, if it exists.
    pub named: Option<Ticket>,
    /// FAQ hits for a question (searched only when the text can be one).
    pub hits: Vec<Hit>,
    /// For "不是同一问题": the active incidents the sender follows without a ticket.
    pub subscribed: Vec<String>,
}

/// Effects to announce after the transaction commits.
#[derive(Debug, Default)]
pub struct Applied {
    pub changed_tickets: Vec<u64>,
    pub changed_incidents: Vec<u64>,
}

static RATING: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"^(已解决|解决了|已经解决|未解决|没解决|没有解决|还没解决)\s*([1-5])?\s*分?$",
    )
    .expect("rating pattern")
});

/// `补充 [工单号 | 工单号后几位] 内容`: group 1 a whole ticket number, 2 its last digits, 3
/// the text.
static SUPPLEMENT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"(?s)^补充(?:\s*([A-Za-z]{1,8}\d{8}-\d{1,6}))?(?:\s*(\d{1,6})(?:[\s:：,，]+|$))?\s*[:：,，]?\s*(.*)$",
    )
    .expect("supplement pattern")
});

/// Decides what to do with each inbound message (built once by `app`).
pub struct Engine {
    pub store: Store,
    pub inbox: Inbox,
    pub outbox: Outbox,
    pub sessions: Sessions,
    pub tickets: Tickets,
    /// Reports are matched against incidents and clustered (outbreaks) as they come.
    pub incidents: Incidents,
    pub scripts: Arc<Scripts>,
    pub kb: Arc<Kb>,
    pub faq_log: FaqLog,
    pub client: Arc<Client>,
    pub fetcher: Fetcher,
    /// Member names, looked up off the ordered path.
    pub names: Arc<NameLookups>,
    pub settings: EngineSettings,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Every tree a processing transaction touches.
    pub fn trees(&self) -> Vec<&dyn AnyTree> {
        let mut v: Vec<&dyn AnyTree> = vec![self.inbox.tree(), self.faq_log.tree()];
        v.extend(self.sessions.trees());
        v.extend(self.tickets.trees());
        v.extend(self.incidents.own_trees());
        v
    }

    /// The slow part, outside any transaction. A storage error is returned, never read as
    /// "no tickets" or "no dialog".
    pub async fn prepare(self: &Arc<Self>, item: &InboxItem) -> store::Result<Prepared> {
        let inbound = &item.inbound;
        let media: Vec<&MediaRef> = match &inbound.content {
            Content::File { media } => vec![media],
            c => c.images(),
        };
        let mut images = Vec::with_capacity(media.len());
        for m in media {
            images.push(
                self.fetcher
                    .fetch(&self.client, self.store.media(), m)
                    .await,
            );
        }
        // The name is cosmetic: never wait for WeCom here (see `names`).
        let name = match self.tickets.cached_name(&inbound.sender)? {
            Some(name) => name,
            None => {
                self.names.request(&inbound.sender);
                inbound.sender.clone()
            }
        };
        let label = crate::tickets::member_label(&inbound.sender, &name);
        let tickets = self.tickets.of_reporter(&inbound.sender)?;
        let named = match inbound
            .content
            .text()
            .and_then(|t| SUPPLEMENT.captures(t.trim()))
            .and_then(|c| c.get(1))
        {
            Some(number) => self.tickets.by_number(number.as_str())?,
            None => None,
        };
        let hits = match inbound.content.text() {
            Some(t) if media_is_empty(&inbound.content) && self.may_be_question(inbound, t)? => {
                // tantivy and jieba are CPU work: keep them off the async threads.
                let (engine, question) = (self.clone(), t.to_owned());
                tokio::task::spawn_blocking(move || engine.kb.search(&question, 5))
                    .await
                    .map_err(|e| store::Error::Io(std::io::Error::other(e)))?
            }
            _ => Vec::new(),
        };
        let subscribed = match inbound.content.text() {
            Some(t) if route::is_not_the_same(t) => self.incidents.subscribed(&inbound.sender)?,
            _ => Vec::new(),
        };
        Ok(Prepared {
            images,
            name,
            label,
            tickets,
            named,
            hits,
            subscribed,
        })
    }

    /// Whether `text` could reach the FAQ (step 5): not a command, not a dialog answer.
    fn may_be_question(&self, inbound: &Inbound, text: &str) -> store::Result<bool> {
        let t = text.trim();
        let scripts = self.scripts.current();
        if t.is_empty()
            || scripts.global_word(t).is_some()
            || scripts.triggered(t).is_some()
            || RATING.is_match(t)
            || SUPPLEMENT.is_match(t)
            || (t.chars().count() <= 2 && t.chars().all(|c| c.is_ascii_digit()))
        {
            return Ok(false);
        }
        let session = self.sessions.peek(&inbound.sender, &inbound.chat_key())?;
        Ok(session.is_none_or(|s| s.dialog.is_none()))
    }

    /// Announce committed changes.
    pub fn after_commit(&self, applied: &[Applied]) {
        for a in applied {
            for id in &a.changed_tickets {
                self.tickets.changed(*id);
            }
            self.incidents.changed(&a.changed_incidents);
        }
        self.outbox.wake();
    }

    /// Apply `batch` in one transaction.
    pub fn commit(
        &self,
        batch: &[(u64, InboxItem, Prepared)],
        now: i64,
    ) -> store::Result<Vec<Applied>> {
        self.store
            .transaction::<_, Infallible>(&self.trees(), |tx| {
                batch
                    .iter()
                    .map(|(seq, item, prep)| self.apply(tx, *seq, item, prep, now))
                    .collect()
            })
            .map_err(TxError::into_store)
    }
}
