//! Conversations: the worker that drains the inbox, and what the bot does with each message.
//!
//! Processing is split in two so that sled's transaction lock is taken once per *batch*:
//! - [`Engine::prepare`] does the slow, state-independent work outside any transaction:
//!   download and store screenshots (fsynced before anything refers to them), look up the
//!   member's name (cached `user/get`), snapshot the member's tickets.
//! - [`Engine::apply`] decides and writes, purely, inside the worker's transaction: the
//!   inbox item is completed, the session, tickets and outbox jobs are written — all or
//!   nothing. Several messages are applied in one transaction, in arrival order, each seeing
//!   the writes of the ones before it.
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

pub mod media;
pub mod session;
pub mod validators;

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::config::FaqConfig;
use crate::inbox::{Inbox, InboxItem};
use crate::kb::log::{Decided, FaqLog, Feedback, QueryLog};
use crate::kb::{self, Decision, Hit, Kb};
use crate::outbox::Outbox;
use crate::script::eval::{self, Action, Answers, Ctx, Input};
use crate::script::{Flow, GlobalWord, ScriptSet, Scripts};
use crate::shutdown::Shutdown;
use crate::store::{self, Abort, AnyTree, Store, Tx, TxError};
use crate::tickets::{NewTicket, Status, Ticket, TicketError, Tickets, notify};
use crate::wecom::client::Client;
use crate::wecom::outbound::{Destination, Message};
use crate::wecom::{Channel, ChatType, Content, Event, Inbound, MediaRef};

use media::{Fetcher, ImageError};
use session::{Pending, Session, Sessions};

/// Processing attempts before an inbox item is dead-lettered.
const MAX_FAILURES: u32 = 5;
/// Inbox items applied in one transaction at most.
const BATCH: usize = 32;

/// What the bot can do, in the words the agent sees.
pub const HELP_TEXT: &str = "您好，我是事件助手，可以帮您：\n\
1. 解答常见问题：直接描述问题，例如“银证转账失败怎么办”\n\
2. 上报问题：发送“提单”，按提示提供客户号/身份证号/手机号、所属系统、问题描述和截图\n\
3. 查询进度：发送“进度”\n\
4. 补充材料：发送“补充 工单号 内容”\n\
处理过程中可随时发送“取消”结束当前操作，发送“人工”联系处理人员。";

const UNSUPPORTED: &str = "暂不支持这类消息，请发送文字或截图。发送“帮助”查看我能做什么。";
const NOT_UNDERSTOOD: &str = "没有找到相关的答案。需要处理人员跟进请回复“提单”，我会一步步引导您提交；发送“帮助”查看我能做什么。";

const EMPTY_HINT: &str = "请直接描述您遇到的问题，或发送“帮助”查看我能做什么。";

/// The question after an FAQ answer.
const FAQ_ASK: &str =
    "这个回答解决您的问题了吗？回复“已解决”或“未解决”；需要处理人员跟进请回复“提单”。";

fn faq_answer(entry: &kb::Entry) -> String {
    format!("【{}】\n{}\n\n{FAQ_ASK}", entry.question, entry.answer)
}

fn media_is_empty(content: &Content) -> bool {
    content.images().is_empty() && !matches!(content, Content::File { .. })
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
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
    pub customer_no: regex::Regex,
    pub utc_offset: chrono::FixedOffset,
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
}

/// Effects to announce after the transaction commits.
#[derive(Debug, Default)]
pub struct Applied {
    pub changed_tickets: Vec<u64>,
}

static RATING: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"^(已解决|解决了|已经解决|未解决|没解决|没有解决|还没解决)\s*([1-5])?\s*分?$",
    )
    .expect("rating pattern")
});

static SUPPLEMENT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"(?s)^补充\s*([A-Za-z]{1,8}\d{8}-\d{1,6})\s*[:：,，]?\s*(.*)$")
        .expect("supplement pattern")
});

/// Decides what to do with each inbound message (built once by `app`).
pub struct Engine {
    pub store: Store,
    pub inbox: Inbox,
    pub outbox: Outbox,
    pub sessions: Sessions,
    pub tickets: Tickets,
    pub scripts: Arc<Scripts>,
    pub kb: Arc<Kb>,
    pub faq_log: FaqLog,
    pub client: Arc<Client>,
    pub fetcher: Fetcher,
    pub settings: EngineSettings,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// The message being applied and its transaction: what every routing step needs.
#[derive(Clone, Copy)]
struct Call<'a, 't> {
    tx: &'a Tx<'t>,
    inbound: &'a Inbound,
    prep: &'a Prepared,
    scripts: &'a ScriptSet,
    now: i64,
}

/// One turn's output: replies to the member in this chat, and tickets touched.
#[derive(Default)]
struct Turn {
    replies: Vec<String>,
    changed: Vec<u64>,
}

impl Turn {
    fn say(&mut self, s: impl Into<String>) {
        self.replies.push(s.into());
    }
}

impl Engine {
    /// Every tree a processing transaction touches.
    pub fn trees(&self) -> Vec<&dyn AnyTree> {
        let mut v: Vec<&dyn AnyTree> = vec![self.inbox.tree(), self.faq_log.tree()];
        v.extend(self.sessions.trees());
        v.extend(self.tickets.trees());
        v
    }

    /// The slow part, outside any transaction.
    pub async fn prepare(&self, item: &InboxItem) -> Prepared {
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
        let name = self
            .tickets
            .member_name(&self.client, &inbound.sender)
            .await;
        let label = crate::tickets::member_label(&inbound.sender, &name);
        let tickets = self
            .tickets
            .of_reporter(&inbound.sender)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading the member's tickets failed");
                Vec::new()
            });
        let named = inbound
            .content
            .text()
            .and_then(|t| SUPPLEMENT.captures(t.trim()))
            .and_then(|c| self.tickets.by_number(&c[1]).ok().flatten());
        let hits = match inbound.content.text() {
            Some(t) if media_is_empty(&inbound.content) && self.may_be_question(inbound, t) => {
                self.kb.search(t, 5)
            }
            _ => Vec::new(),
        };
        Prepared {
            images,
            name,
            label,
            tickets,
            named,
            hits,
        }
    }

    /// Whether `text` could reach the FAQ (step 5): not a command, not a dialog answer.
    fn may_be_question(&self, inbound: &Inbound, text: &str) -> bool {
        let t = text.trim();
        let scripts = self.scripts.current();
        if t.is_empty()
            || scripts.global_word(t).is_some()
            || scripts.triggered(t).is_some()
            || RATING.is_match(t)
            || SUPPLEMENT.is_match(t)
            || (t.chars().count() <= 2 && t.chars().all(|c| c.is_ascii_digit()))
        {
            return false;
        }
        let chat = inbound.chat_key();
        !matches!(self.sessions.peek(&inbound.sender, &chat), Ok(Some(s)) if s.dialog.is_some())
    }

    fn ctx<'a>(&'a self, inbound: &Inbound) -> Ctx<'a> {
        Ctx {
            customer_no: &self.settings.customer_no,
            group: inbound.chat_type == ChatType::Group,
        }
    }

    /// Decide and write, inside the worker's transaction.
    pub fn apply(
        &self,
        tx: &Tx<'_>,
        seq: u64,
        item: &InboxItem,
        prep: &Prepared,
        now: i64,
    ) -> Result<Applied, Abort<Infallible>> {
        let inbound = &item.inbound;
        self.inbox.complete(tx, seq, item, now)?;
        let scripts = self.scripts.current();
        let chat = inbound.chat_key();
        let member = inbound.sender.as_str();
        let mut session = self.sessions.get(tx, member, &chat)?;
        let mut turn = Turn::default();

        // Idle timeout: the dialog ends, and the member hears so at their next message.
        let idle = now - session.last_active > self.settings.idle_timeout.as_millis() as i64;
        if idle && session.last_active > 0 {
            if session.dialog.take().is_some() {
                let minutes = self.settings.idle_timeout.as_secs().div_ceil(60);
                turn.say(
                    scripts
                        .global
                        .expired
                        .replace("{minutes}", &minutes.to_string()),
                );
            }
            session.pending = None;
        }

        let call = Call {
            tx,
            inbound,
            prep,
            scripts: &scripts,
            now,
        };
        match &inbound.content {
            Content::Event { event } => self.on_event(&call, event, &mut session, &mut turn)?,
            Content::Voice {
                transcript: None, ..
            }
            | Content::Video { .. }
            | Content::Location { .. }
            | Content::Link { .. } => turn.say(UNSUPPORTED),
            content => {
                let text = content.text().map(str::trim).filter(|t| !t.is_empty());
                let mut images = Vec::new();
                for r in &prep.images {
                    match r {
                        Ok(h) => images.push(h.clone()),
                        Err(e) => turn.say(e.to_string()),
                    }
                }
                if text.is_none() && images.is_empty() && prep.images.is_empty() {
                    turn.say(EMPTY_HINT);
                }
                if text.is_some() || !images.is_empty() {
                    self.on_message(&call, text, images, &mut session, &chat, &mut turn)?;
                }
            }
        }

        session.last_active = now;
        self.sessions.put(tx, member, &chat, &session)?;
        let dest = reply_destination(inbound);
        let origin = format!("inbox/{}", inbound.msg_id);
        for m in shape_replies(inbound, turn.replies) {
            self.outbox.stage(tx, &dest, m, &origin)?;
        }
        Ok(Applied {
            changed_tickets: turn.changed,
        })
    }

    fn on_event(
        &self,
        c: &Call<'_, '_>,
        event: &Event,
        session: &mut Session,
        turn: &mut Turn,
    ) -> Result<(), Abort<Infallible>> {
        let Call {
            tx,
            inbound,
            scripts,
            ..
        } = *c;
        match event {
            // The AI bot's welcome went back as the callback's passive reply.
            Event::EnterChat => {}
            Event::EnterAgent => turn.say(HELP_TEXT),
            Event::Click { key } => match key.as_str() {
                "progress" | "menu_progress" => turn.say(self.progress_text(c)?),
                "report" | "menu_report" => {
                    if let Some(flow) = scripts.report_flow() {
                        self.begin(c, flow, Answers::default(), session, turn);
                    }
                }
                _ => turn.say(HELP_TEXT),
            },
            Event::TemplateCard {
                event_key,
                task_id,
                response_code,
                selected,
                ..
            } => {
                let Some(id) = task_id
                    .strip_prefix("rate-")
                    .and_then(|r| r.split('-').next())
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    return Ok(());
                };
                let solved = event_key == "rate_solved";
                let score = selected
                    .iter()
                    .find(|s| s.question_key == "score")
                    .and_then(|s| s.option_ids.first())
                    .and_then(|o| o.parse::<u8>().ok())
                    .filter(|s| (1..=5).contains(s));
                let label = self.rate(c, id, solved, score, turn)?;
                if !response_code.is_empty()
                    && let Some(label) = label
                {
                    self.outbox.stage(
                        tx,
                        &Destination::CardUpdate {
                            userid: inbound.sender.clone(),
                            response_code: response_code.clone(),
                        },
                        Message::text(label),
                        &format!("card/{task_id}"),
                    )?;
                }
            }
            // FAQ like/dislike feedback is recorded by the FAQ module.
            Event::Feedback { .. } => {}
        }
        Ok(())
    }

    /// Rate ticket `id`; returns the label for the card, or `None` when refused (the reason is
    /// said in `turn`).
    fn rate(
        &self,
        c: &Call<'_, '_>,
        id: u64,
        solved: bool,
        score: Option<u8>,
        turn: &mut Turn,
    ) -> Result<Option<String>, Abort<Infallible>> {
        let (tx, now, member) = (c.tx, c.now, c.inbound.sender.as_str());
        match self
            .tickets
            .rate_in::<TicketError>(tx, id, member, solved, score, now)
        {
            Ok(t) => {
                turn.changed.push(t.id);
                let stars = score
                    .map(|s| format!("，满意度 {s} 分"))
                    .unwrap_or_default();
                if solved {
                    turn.say(format!("感谢您的评价{stars}！工单 {} 已关闭。", t.number));
                } else {
                    turn.say(format!(
                        "收到，工单 {} 已重新打开并通知处理人员，会继续跟进。您也可以直接补充：补充 {} 具体情况",
                        t.number, t.number
                    ));
                }
                Ok(Some(format!(
                    "已评价：{}{}",
                    if solved { "已解决" } else { "未解决" },
                    score.map(|s| format!(" · {s}分")).unwrap_or_default()
                )))
            }
            Err(Abort::User(TicketError::IllegalTransition { .. })) => {
                turn.say("这个工单已经评价过或不在“已解决”状态，无需再评价。");
                Ok(None)
            }
            Err(Abort::User(e)) => {
                turn.say(e.to_string());
                Ok(None)
            }
            Err(Abort::Fail(f)) => Err(Abort::Fail(f)),
        }
    }

    fn on_message(
        &self,
        c: &Call<'_, '_>,
        text: Option<&str>,
        images: Vec<String>,
        session: &mut Session,
        chat: &str,
        turn: &mut Turn,
    ) -> Result<(), Abort<Infallible>> {
        let Call {
            tx,
            inbound,
            prep,
            scripts,
            now,
        } = *c;
        let member = inbound.sender.as_str();

        // 1. Global words.
        if let Some(t) = text
            && images.is_empty()
            && let Some(word) = scripts.global_word(t)
        {
            return self.on_global(c, word, session, turn);
        }

        // 2. A running dialog takes the input.
        if session.dialog.is_some() {
            return self.advance(c, text, images, session, turn);
        }

        // An image (or "完成") in the app chat may belong to a dialog waiting for screenshots
        // elsewhere — a group cannot carry standalone images to the bot.
        if inbound.channel == Channel::App
            && let Some(other) = self.dialog_waiting_for_images(tx, member, chat, scripts)?
            && (!images.is_empty() || text.is_some_and(|t| self.is_done_word(scripts, &other.1, t)))
        {
            let (other_chat, mut other_session) = other;
            let flow_name = other_session
                .dialog
                .as_ref()
                .and_then(|d| scripts.flow(&d.flow))
                .map(|f| f.name.clone())
                .unwrap_or_default();
            turn.say(format!("已转到您在群聊中进行的“{flow_name}”。"));
            self.advance(c, text, images, &mut other_session, turn)?;
            other_session.last_active = now;
            self.sessions.put(tx, member, &other_chat, &other_session)?;
            return Ok(());
        }

        // The answer to the last FAQ question ("是否解决了" / "您是不是想问").
        if let Some(t) = text
            && images.is_empty()
            && let Some(pending) = session.pending.take()
            && self.on_pending(c, t, pending, session, turn)?
        {
            return Ok(());
        }

        // 3. Ratings, named supplements, tickets waiting for information.
        if let Some(t) = text
            && let Some(caps) = RATING.captures(t)
        {
            let solved = matches!(&caps[1], "已解决" | "解决了" | "已经解决");
            let score = caps.get(2).and_then(|m| m.as_str().parse::<u8>().ok());
            if let Some(ticket) = prep.tickets.iter().find(|t| t.awaits_rating()) {
                self.rate(c, ticket.id, solved, score, turn)?;
                return Ok(());
            }
        }
        if let Some(t) = text
            && let Some(caps) = SUPPLEMENT.captures(t)
        {
            let body = caps[2].trim();
            let Some(ticket) = &prep.named else {
                turn.say(format!(
                    "没有找到工单 {}，请核对工单号。发送“进度”查看您的工单。",
                    &caps[1]
                ));
                return Ok(());
            };
            return self.supplement(c, ticket.id, body, &images, turn);
        }
        if let Some(waiting) = prep.tickets.iter().find(|t| t.status == Status::NeedInfo) {
            return self.supplement(c, waiting.id, text.unwrap_or_default(), &images, turn);
        }

        // 4. Flow triggers; screenshots start the report flow (a burst).
        if let Some(t) = text
            && images.is_empty()
            && let Some(flow) = scripts.triggered(t)
        {
            self.begin(c, flow, Answers::default(), session, turn);
            return Ok(());
        }
        if !images.is_empty() {
            let burst_ms = self.settings.burst_window.as_millis() as i64;
            let description = text.map(str::to_owned).or_else(|| {
                session
                    .last_text
                    .as_ref()
                    .filter(|(_, at)| now - at <= burst_ms)
                    .map(|(t, _)| t.clone())
            });
            if let Some(flow) = scripts.report_flow() {
                let prefill = Answers {
                    description,
                    screenshots: images,
                    ..Answers::default()
                };
                self.begin(c, flow, prefill, session, turn);
            }
            return Ok(());
        }

        // 5. A question for the FAQ.
        if let Some(t) = text {
            session.last_text = Some((t.to_owned(), now));
            self.answer_question(c, t, session, turn)?;
        }
        Ok(())
    }

    fn log_question(
        &self,
        c: &Call<'_, '_>,
        question: &str,
        decided: Decided,
    ) -> Result<u64, Abort<Infallible>> {
        Ok(self.faq_log.record_in(
            c.tx,
            &QueryLog {
                at: c.now,
                member: c.inbound.sender.clone(),
                channel: c.inbound.channel.as_str().to_owned(),
                question: crate::tickets::mask::mask_text(&crate::util::truncate_chars(
                    question, 200,
                )),
                hits: c
                    .prep
                    .hits
                    .iter()
                    .map(|h| (h.entry.id.clone(), h.confidence))
                    .collect(),
                decided,
                feedback: None,
            },
        )?)
    }

    /// The FAQ-first policy: answer, suggest, or say so and offer the intake.
    fn answer_question(
        &self,
        c: &Call<'_, '_>,
        question: &str,
        session: &mut Session,
        turn: &mut Turn,
    ) -> Result<(), Abort<Infallible>> {
        match kb::decide(&c.prep.hits, &self.settings.faq) {
            Decision::Answer(hit) => {
                let log_id = self.log_question(
                    c,
                    question,
                    Decided::Answered {
                        entry: hit.entry.id.clone(),
                    },
                )?;
                turn.say(faq_answer(&hit.entry));
                session.pending = Some(Pending::FaqFeedback {
                    log_id,
                    question: question.to_owned(),
                    entry_id: hit.entry.id.clone(),
                });
            }
            Decision::Suggest(hits) => {
                let entries: Vec<String> = hits.iter().map(|h| h.entry.id.clone()).collect();
                let log_id = self.log_question(
                    c,
                    question,
                    Decided::Suggested {
                        entries: entries.clone(),
                    },
                )?;
                let list: Vec<String> = hits
                    .iter()
                    .enumerate()
                    .map(|(i, h)| format!("{}. {}", i + 1, h.entry.question))
                    .collect();
                turn.say(format!(
                    "您是不是想问：\n{}\n\n回复序号查看答案；都不是请回复“提单”上报。",
                    list.join("\n")
                ));
                session.pending = Some(Pending::FaqChoice {
                    log_id,
                    question: question.to_owned(),
                    entries,
                });
            }
            Decision::NoMatch => {
                self.log_question(c, question, Decided::NoMatch)?;
                turn.say(NOT_UNDERSTOOD);
            }
        }
        Ok(())
    }

    /// Start the report flow with `question` kept as the description.
    fn start_report(
        &self,
        c: &Call<'_, '_>,
        question: &str,
        session: &mut Session,
        turn: &mut Turn,
    ) {
        let Some(flow) = c.scripts.report_flow() else {
            return;
        };
        let prefill = Answers {
            description: Some(question.to_owned()),
            ..Answers::default()
        };
        self.begin(c, flow, prefill, session, turn);
    }

    /// Start `flow` for the member, prefilled with `prefill`. The dialog replaces any
    /// pending FAQ question and the text remembered for a burst.
    fn begin(
        &self,
        c: &Call<'_, '_>,
        flow: &Flow,
        prefill: Answers,
        session: &mut Session,
        turn: &mut Turn,
    ) {
        let (d, replies) = eval::start(flow, prefill, self.ctx(c.inbound));
        session.dialog = Some(d);
        session.pending = None;
        session.last_text = None;
        turn.replies.extend(replies);
    }

    /// Handle a reply to the last FAQ question. Returns whether it was one.
    fn on_pending(
        &self,
        c: &Call<'_, '_>,
        text: &str,
        pending: Pending,
        session: &mut Session,
        turn: &mut Turn,
    ) -> Result<bool, Abort<Infallible>> {
        let key = crate::script::word_key(text);
        let solved = matches!(
            key.as_str(),
            "已解决" | "解决了" | "已经解决" | "好了" | "谢谢" | "明白了"
        );
        let unsolved = matches!(
            key.as_str(),
            "未解决" | "没解决" | "没有解决" | "还没解决" | "不是" | "都不是" | "没用" | "不行"
        );
        let trigger = c.scripts.triggered(text).is_some();
        let (log_id, question) = match &pending {
            Pending::FaqFeedback {
                log_id, question, ..
            }
            | Pending::FaqChoice {
                log_id, question, ..
            } => (*log_id, question.clone()),
        };
        if trigger || unsolved {
            let fb = if trigger {
                Feedback::Ticket
            } else {
                Feedback::Unsolved
            };
            self.faq_log.feedback_in(c.tx, log_id, fb)?;
            if unsolved {
                turn.say("抱歉没能解决。我们来提交工单，您的问题已记为问题描述。");
            }
            self.start_report(c, &question, session, turn);
            return Ok(true);
        }
        match pending {
            Pending::FaqFeedback { .. } if solved => {
                self.faq_log.feedback_in(c.tx, log_id, Feedback::Solved)?;
                turn.say("很高兴帮到您！还有问题随时问我。");
                Ok(true)
            }
            Pending::FaqChoice { entries, .. } => {
                let picked = crate::conversation::validators::normalize(text)
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| entries.get(n.checked_sub(1)?))
                    .and_then(|id| self.kb.current().get(id).cloned());
                let Some(entry) = picked else {
                    return Ok(false);
                };
                self.faq_log.chosen_in(c.tx, log_id, &entry.id)?;
                turn.say(faq_answer(&entry));
                session.pending = Some(Pending::FaqFeedback {
                    log_id,
                    question,
                    entry_id: entry.id.clone(),
                });
                Ok(true)
            }
            Pending::FaqFeedback { .. } => Ok(false),
        }
    }

    fn is_done_word(&self, scripts: &ScriptSet, session: &Session, text: &str) -> bool {
        let Some(d) = &session.dialog else {
            return false;
        };
        let Some(flow) = scripts.flow(&d.flow) else {
            return false;
        };
        match flow.steps.get(d.step).map(|s| &s.kind) {
            Some(crate::script::StepKind::Images { done_words, .. }) => {
                crate::script::matches_word(text, done_words)
            }
            _ => false,
        }
    }

    /// Another chat of `member` whose dialog is at an images step.
    fn dialog_waiting_for_images(
        &self,
        tx: &Tx<'_>,
        member: &str,
        chat: &str,
        scripts: &ScriptSet,
    ) -> Result<Option<(String, Session)>, Abort<Infallible>> {
        for other in self.sessions.dialogs_of(tx, member)? {
            if other == chat {
                continue;
            }
            let s = self.sessions.get(tx, member, &other)?;
            let waiting = s.dialog.as_ref().is_some_and(|d| {
                scripts
                    .flow(&d.flow)
                    .and_then(|f| f.steps.get(d.step))
                    .is_some_and(|st| matches!(st.kind, crate::script::StepKind::Images { .. }))
            });
            if waiting {
                return Ok(Some((other, s)));
            }
        }
        Ok(None)
    }

    fn on_global(
        &self,
        c: &Call<'_, '_>,
        word: GlobalWord,
        session: &mut Session,
        turn: &mut Turn,
    ) -> Result<(), Abort<Infallible>> {
        let Call {
            tx,
            inbound,
            prep,
            scripts,
            ..
        } = *c;
        let ctx = self.ctx(inbound);
        let current_prompt = |s: &Session| {
            s.dialog.as_ref().and_then(|d| {
                scripts
                    .flow(&d.flow)
                    .map(|f| format!("（继续当前提单）{}", eval::prompt(f, d, ctx)))
            })
        };
        match word {
            GlobalWord::Cancel => {
                session.pending = None;
                if session.dialog.take().is_some() {
                    turn.say(scripts.global.cancelled.clone());
                } else {
                    turn.say(scripts.global.nothing_to_cancel.clone());
                }
            }
            GlobalWord::Restart => {
                let flow = session
                    .dialog
                    .as_ref()
                    .and_then(|d| scripts.flow(&d.flow))
                    .or_else(|| scripts.flow("report"))
                    .cloned();
                if let Some(flow) = flow {
                    turn.say(scripts.global.restarted.clone());
                    self.begin(c, &flow, Answers::default(), session, turn);
                }
            }
            GlobalWord::Help => {
                turn.say(HELP_TEXT);
                if let Some(p) = current_prompt(session) {
                    turn.say(p);
                }
            }
            GlobalWord::Human => {
                turn.say(scripts.global.human_notice.clone());
                let open: Vec<Ticket> = prep
                    .tickets
                    .iter()
                    .filter(|t| t.status.is_open())
                    .cloned()
                    .collect();
                self.outbox.stage(
                    tx,
                    &Destination::Robot,
                    Message::Markdown {
                        content: notify::robot_human(&prep.label, &open),
                    },
                    &format!("human/{}", inbound.sender),
                )?;
                if let Some(p) = current_prompt(session) {
                    turn.say(p);
                }
            }
            GlobalWord::Progress => {
                turn.say(self.progress_text(c)?);
                if let Some(p) = current_prompt(session) {
                    turn.say(p);
                }
            }
        }
        Ok(())
    }

    fn advance(
        &self,
        c: &Call<'_, '_>,
        text: Option<&str>,
        images: Vec<String>,
        session: &mut Session,
        turn: &mut Turn,
    ) -> Result<(), Abort<Infallible>> {
        let Call {
            tx,
            inbound,
            prep,
            scripts,
            now,
        } = *c;
        let Some(mut dialog) = session.dialog.take() else {
            return Ok(());
        };
        let Some(flow) = scripts.flow(&dialog.flow).cloned() else {
            turn.say("流程已更新，请发送“提单”重新开始。");
            return Ok(());
        };
        let ctx = self.ctx(inbound);
        let input = Input { text, images };
        let outcome = eval::advance(&flow, &mut dialog, &input, ctx, &scripts.global);
        turn.replies.extend(outcome.replies);
        match outcome.action {
            Action::Continue => session.dialog = Some(dialog),
            Action::Cancel => {}
            Action::Submit => {
                let a = dialog.answers;
                let (Some(customer_id), Some(system), Some(description)) =
                    (a.customer_id, a.system, a.description)
                else {
                    turn.say("信息不完整，请发送“提单”重新开始。");
                    return Ok(());
                };
                let new = NewTicket {
                    reporter: inbound.sender.clone(),
                    reporter_name: prep.name.clone(),
                    channel: inbound.channel,
                    chat_type: inbound.chat_type,
                    chat_id: inbound.chat_id.clone(),
                    customer_id,
                    system,
                    description,
                    screenshots: a.screenshots,
                };
                let t = self.tickets.create_in(tx, &new, now)?;
                turn.say(notify::filed(&t));
                turn.changed.push(t.id);
            }
        }
        Ok(())
    }

    fn supplement(
        &self,
        c: &Call<'_, '_>,
        id: u64,
        text: &str,
        images: &[String],
        turn: &mut Turn,
    ) -> Result<(), Abort<Infallible>> {
        let (tx, now, member) = (c.tx, c.now, c.inbound.sender.as_str());
        match self
            .tickets
            .supplement_in::<TicketError>(tx, id, member, text, images, now)
        {
            Ok(t) => {
                turn.changed.push(t.id);
                let what = match (text.trim().is_empty(), images.len()) {
                    (false, 0) => "补充说明".to_owned(),
                    (true, n) => format!("{n} 张截图"),
                    (false, n) => format!("补充说明和 {n} 张截图"),
                };
                turn.say(format!(
                    "已将{what}添加到工单 {}（{}），处理人员会看到。",
                    t.number,
                    t.status.label()
                ));
            }
            Err(Abort::User(TicketError::Empty)) => {
                turn.say("请在工单号后写上要补充的内容，例如：补充 IT20261121-0001 客户已重启App，问题依旧");
            }
            Err(Abort::User(e)) => turn.say(e.to_string()),
            Err(Abort::Fail(f)) => return Err(Abort::Fail(f)),
        }
        Ok(())
    }

    /// The member's open tickets (and those waiting for a rating). The list comes from the
    /// prepare step; each ticket is re-read in the transaction (no other sled call may run
    /// inside it: sled holds its global lock for the whole closure).
    fn progress_text(&self, c: &Call<'_, '_>) -> Result<String, Abort<Infallible>> {
        let (tx, prep) = (c.tx, c.prep);
        let mut lines = Vec::new();
        for t in &prep.tickets {
            // Re-read inside the transaction: this turn may have changed it.
            let Some(t) = self.tickets.get_in(tx, t.id)? else {
                continue;
            };
            if !(t.status.is_open() || t.awaits_rating()) {
                continue;
            }
            let when = chrono::DateTime::from_timestamp_millis(t.updated_at)
                .unwrap_or_default()
                .with_timezone(&self.settings.utc_offset)
                .format("%m-%d %H:%M");
            lines.push(format!(
                "{}. {} · {} · {}（更新于 {when}）\n   {}",
                lines.len() + 1,
                t.number,
                t.system,
                t.status.label(),
                crate::tickets::mask::mask_text(&crate::util::truncate_chars(&t.description, 30))
            ));
            if lines.len() == 10 {
                break;
            }
        }
        Ok(if lines.is_empty() {
            "您目前没有进行中的工单。遇到问题发送“提单”即可上报。".to_owned()
        } else {
            format!(
                "您有 {} 个进行中的工单：\n{}\n\n补充信息请发送“补充 工单号 内容”。",
                lines.len(),
                lines.join("\n")
            )
        })
    }

    /// Announce committed changes.
    pub fn after_commit(&self, applied: &[Applied]) {
        for a in applied {
            for id in &a.changed_tickets {
                self.tickets.changed(*id);
            }
        }
        self.outbox.wake();
    }

    /// Apply `batch` in one transaction.
    fn commit(
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

/// Drains the inbox in order through the [`Engine`], a batch per transaction.
pub struct Worker {
    inbox: Inbox,
    engine: Arc<Engine>,
}

impl Worker {
    pub fn new(inbox: Inbox, engine: Arc<Engine>) -> Worker {
        Worker { inbox, engine }
    }

    pub async fn run(self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        loop {
            let pending = self.inbox.pending(BATCH)?;
            if pending.is_empty() {
                tokio::select! {
                    () = shutdown.wait() => return Ok(()),
                    () = self.inbox.wait() => {}
                    () = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
                continue;
            }
            if shutdown.is_triggered() {
                return Ok(());
            }
            let mut batch = Vec::with_capacity(pending.len());
            for (seq, item) in pending {
                let prep = self.engine.prepare(&item).await;
                batch.push((seq, item, prep));
            }
            let now = crate::util::unix_millis();
            let engine = self.engine.clone();
            let result = {
                let batch = &batch;
                tokio::task::block_in_place(|| engine.commit(batch, now))
            };
            match result {
                Ok(applied) => {
                    let seqs: Vec<u64> = batch.iter().map(|(s, _, _)| *s).collect();
                    self.inbox.processed(&seqs);
                    self.engine.after_commit(&applied);
                }
                Err(e) => {
                    tracing::error!(error = %e, size = batch.len(), "batch failed; retrying items one by one");
                    for (seq, item, prep) in batch {
                        let one = [(seq, item, prep)];
                        match tokio::task::block_in_place(|| self.engine.commit(&one, now)) {
                            Ok(applied) => {
                                self.inbox.processed(&[seq]);
                                self.engine.after_commit(&applied);
                            }
                            Err(e) => {
                                tracing::error!(seq, msg_id = %one[0].1.inbound.msg_id, error = %e, "processing failed");
                                if self.inbox.record_failure(seq, MAX_FAILURES)? {
                                    tracing::error!(
                                        seq,
                                        "inbox item dead-lettered after repeated failures"
                                    );
                                }
                            }
                        }
                    }
                    tokio::select! {
                        () = shutdown.wait() => return Ok(()),
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}
