//! [`Engine::apply`] and the routing of one message (the numbered steps in the module docs).
//!
//! Every routing step is a method on [`Turn`]: the message, its transaction, what `prepare`
//! gathered, the member's session in this chat, and what the turn says and changes.

use std::convert::Infallible;

use super::{Applied, Engine, Prepared, RATING, SUPPLEMENT, reply_destination, shape_replies};
use crate::inbox::InboxItem;
use crate::incidents::{Incident, Report};
use crate::script::eval::{self, Action, Answers, Ctx, Input};
use crate::script::{Flow, GlobalWord, ScriptSet, StepKind};
use crate::store::{Abort, Tx};
use crate::tickets::{NewTicket, Status, Ticket, TicketError, notify};
use crate::wecom::outbound::{Destination, Message};
use crate::wecom::{Channel, ChatType, Content, Event, Inbound};

use super::followup::Confirm;
use super::session::Session;

const UNSUPPORTED: &str = "暂不支持这类消息，请发送文字或截图。发送“帮助”查看我能做什么。";
const EMPTY_HINT: &str = "请直接描述您遇到的问题，或发送“帮助”查看我能做什么。";
const NOTHING_TO_RATE: &str =
    "您目前没有待评价的工单。遇到问题请直接描述，或发送“进度”查看您的工单。";
const NO_LIST: &str = "没有可以选择的列表了。请直接描述您的问题；需要处理人员跟进请发送“提单”。";

/// "不是同一问题" and the ways agents say it.
pub(super) fn is_not_the_same(text: &str) -> bool {
    let key = crate::script::word_key(text);
    matches!(
        key.as_str(),
        "不是同一问题"
            | "不是同一个问题"
            | "不是这个问题"
            | "不是一个问题"
            | "不是同一件事"
            | "不是这个"
    )
}

/// The result of a routing step: a storage failure aborts the whole transaction.
pub(super) type Step<T = ()> = Result<T, Abort<Infallible>>;

/// One message being applied inside the worker's transaction.
pub(super) struct Turn<'a, 't> {
    pub(super) engine: &'a Engine,
    pub(super) tx: &'a Tx<'t>,
    pub(super) inbound: &'a Inbound,
    pub(super) prep: &'a Prepared,
    pub(super) scripts: &'a ScriptSet,
    /// Unix ms the batch is applied at.
    pub(super) now: i64,
    /// The chat key of the message (`app/zhangsan`, `bot/wrGroup01`).
    pub(super) chat: String,
    /// The member's session in this chat, written back at the end of the turn.
    pub(super) session: Session,
    /// Replies to the member in this chat, in order.
    replies: Vec<String>,
    /// Tickets this turn changed (announced after the commit).
    pub(super) changed: Vec<u64>,
    /// Incidents this turn changed.
    pub(super) changed_incidents: Vec<u64>,
}

impl Engine {
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
        let span = tracing::info_span!("conversation_step", msg_id = %inbound.msg_id, seq);
        let _entered = span.enter();
        self.inbox.complete(tx, seq, item, now)?;
        let scripts = self.scripts.current();
        let chat = inbound.chat_key();
        let session = self.sessions.get(tx, &inbound.sender, &chat)?;
        let mut turn = Turn {
            engine: self,
            tx,
            inbound,
            prep,
            scripts: &scripts,
            now,
            chat,
            session,
            replies: Vec::new(),
            changed: Vec::new(),
            changed_incidents: Vec::new(),
        };
        turn.expire_idle();
        match &inbound.content {
            Content::Event { event } => turn.on_event(event)?,
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
                    turn.on_message(text, images)?;
                }
            }
        }
        turn.finish()
    }
}

impl Turn<'_, '_> {
    pub(super) fn say(&mut self, s: impl Into<String>) {
        self.replies.push(s.into());
    }

    pub(super) fn member(&self) -> &str {
        &self.inbound.sender
    }

    pub(super) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            customer_no: &self.engine.settings.customer_no,
            group: self.inbound.chat_type == ChatType::Group,
        }
    }

    /// Idle timeout: the dialog ends, and the member hears so at their next message.
    fn expire_idle(&mut self) {
        let timeout = self.engine.settings.idle_timeout;
        let last = self.session.last_active;
        if last == 0 || self.now - last <= timeout.as_millis() as i64 {
            return;
        }
        if self.session.dialog.take().is_some() {
            let minutes = timeout.as_secs().div_ceil(60).to_string();
            let text = self.scripts.global.expired.replace("{minutes}", &minutes);
            self.say(text);
        }
        self.session.pending = None;
    }

    /// Write the session back and stage the replies.
    fn finish(mut self) -> Step<Applied> {
        let engine = self.engine;
        self.session.last_active = self.now;
        engine
            .sessions
            .put(self.tx, self.member(), &self.chat, &self.session)?;
        let dest = reply_destination(self.inbound);
        let origin = format!("inbox/{}", self.inbound.msg_id);
        for m in shape_replies(self.inbound, std::mem::take(&mut self.replies)) {
            engine.outbox.stage(self.tx, &dest, m, &origin)?;
        }
        Ok(Applied {
            changed_tickets: self.changed,
            changed_incidents: self.changed_incidents,
        })
    }

    fn on_event(&mut self, event: &Event) -> Step {
        match event {
            // The AI bot's welcome went back as the callback's passive reply.
            Event::EnterChat => {}
            Event::EnterAgent => self.say(super::HELP_TEXT),
            Event::Click { key } => match key.as_str() {
                "progress" | "menu_progress" => {
                    let text = self.progress_text()?;
                    self.say(text);
                }
                "report" | "menu_report" => {
                    if let Some(flow) = self.scripts.report_flow() {
                        self.begin(flow, Answers::default());
                    }
                }
                _ => self.say(super::HELP_TEXT),
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
                let label = self.rate(id, solved, score)?;
                if !response_code.is_empty()
                    && let Some(label) = label
                {
                    self.engine.outbox.stage(
                        self.tx,
                        &Destination::CardUpdate {
                            userid: self.inbound.sender.clone(),
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

    fn on_message(&mut self, text: Option<&str>, images: Vec<String>) -> Step {
        // 1. Global words.
        if let Some(t) = text
            && images.is_empty()
            && let Some(word) = self.scripts.global_word(t)
        {
            return self.on_global(word);
        }

        // 2. A running dialog takes the input.
        if self.session.dialog.is_some() {
            return self.advance(text, images);
        }

        // An image (or "完成") in the app chat may belong to a dialog waiting for screenshots
        // elsewhere — a group cannot carry standalone images to the bot.
        if self.inbound.channel == Channel::App
            && let Some((other_chat, other)) = self.dialog_waiting_for_images()?
            && (!images.is_empty() || text.is_some_and(|t| self.is_done_word(&other, t)))
        {
            return self.advance_elsewhere(other_chat, other, text, images);
        }

        // The answer to the last FAQ question ("是否解决了" / "您是不是想问").
        if let Some(t) = text
            && images.is_empty()
            && let Some(pending) = self.session.pending.take()
            && self.on_pending(t, pending)?
        {
            return Ok(());
        }

        // A report matched to a known incident that the member says is something else.
        if let Some(t) = text
            && images.is_empty()
            && is_not_the_same(t)
            && self.not_the_same_problem()?
        {
            return Ok(());
        }

        // 3. Ratings, named supplements, tickets waiting for information.
        if let Some(t) = text
            && let Some(caps) = RATING.captures(t)
        {
            let solved = matches!(&caps[1], "已解决" | "解决了" | "已经解决");
            let score = caps.get(2).and_then(|m| m.as_str().parse::<u8>().ok());
            if let Some(ticket) = self.prep.tickets.iter().find(|t| t.awaits_rating()) {
                self.rate(ticket.id, solved, score)?;
                return Ok(());
            }
        }
        if let Some(t) = text
            && let Some(caps) = SUPPLEMENT.captures(t)
        {
            let body = caps.get(3).map_or("", |m| m.as_str().trim());
            let target = match (caps.get(1), caps.get(2)) {
                (Some(number), _) => match &self.prep.named {
                    Some(ticket) => Some(ticket.id),
                    None => {
                        self.say(format!(
                            "没有找到工单 {}，请核对工单号。发送“进度”查看您的工单。",
                            number.as_str()
                        ));
                        return Ok(());
                    }
                },
                (None, Some(digits)) => self.own_ticket_ending(digits.as_str()),
                (None, None) => self.only_open_ticket(),
            };
            return match target {
                Some(id) => self.supplement(id, body, &images, Confirm::Full),
                None => {
                    let text = self.supplement_usage();
                    self.say(text);
                    Ok(())
                }
            };
        }
        if let Some(waiting) = self
            .prep
            .tickets
            .iter()
            .find(|t| t.status == Status::NeedInfo)
        {
            return self.supplement(waiting.id, text.unwrap_or_default(), &images, Confirm::Full);
        }

        // A handler is talking with the member about a ticket: their words go there, unless
        // they start something new.
        if text.is_none_or(|t| self.scripts.triggered(t).is_none()) {
            let talking = self.in_conversation();
            if !talking.is_empty() {
                return self.follow_up(&talking, text, images);
            }
        }

        // 4. Flow triggers; screenshots start the report flow (a burst). The report keeps
        // the question asked just before (the FAQ's answer invites 提单).
        if let Some(t) = text
            && images.is_empty()
            && let Some(flow) = self.scripts.triggered(t)
        {
            let is_report = self.scripts.report_flow().is_some_and(|r| r.id == flow.id);
            let recent = self.engine.settings.idle_timeout.as_millis() as i64;
            let description = self
                .session
                .last_text
                .as_ref()
                .filter(|(_, at)| is_report && self.now - at <= recent)
                .map(|(q, _)| q.clone());
            let prefill = Answers {
                description,
                ..Answers::default()
            };
            self.begin(flow, prefill);
            return Ok(());
        }
        if !images.is_empty() {
            self.start_burst(text, images);
            return Ok(());
        }

        // 5. A question for the FAQ (a rating word with nothing to rate, or a bare number,
        // is not one: it gets a hint and stays out of the FAQ report).
        if let Some(t) = text {
            if RATING.is_match(t) {
                self.say(NOTHING_TO_RATE);
                return Ok(());
            }
            if t.chars().count() <= 2 && t.chars().all(|c| c.is_ascii_digit()) {
                self.say(NO_LIST);
                return Ok(());
            }
            self.session.last_text = Some((t.to_owned(), self.now));
            self.answer_question(t)?;
        }
        Ok(())
    }

    /// Screenshots without a dialog start the report flow; the text sent with them, or just
    /// before them within the burst window, becomes the description.
    fn start_burst(&mut self, text: Option<&str>, images: Vec<String>) {
        let burst_ms = self.engine.settings.burst_window.as_millis() as i64;
        let description = text.map(str::to_owned).or_else(|| {
            self.session
                .last_text
                .as_ref()
                .filter(|(_, at)| self.now - at <= burst_ms)
                .map(|(t, _)| t.clone())
        });
        if let Some(flow) = self.scripts.report_flow() {
            let prefill = Answers {
                description,
                screenshots: images,
                ..Answers::default()
            };
            self.begin(flow, prefill);
        }
    }

    /// Whether `text` is a done word of the images step `session`'s dialog is at.
    fn is_done_word(&self, session: &Session, text: &str) -> bool {
        let Some(d) = &session.dialog else {
            return false;
        };
        match self
            .scripts
            .flow(&d.flow)
            .and_then(|f| f.steps.get(d.step))
            .map(|s| &s.kind)
        {
            Some(StepKind::Images { done_words, .. }) => {
                crate::script::matches_word(text, done_words)
            }
            _ => false,
        }
    }

    /// Another chat of the member whose dialog is at an images step.
    fn dialog_waiting_for_images(&self) -> Step<Option<(String, Session)>> {
        let sessions = &self.engine.sessions;
        for other in sessions.dialogs_of(self.tx, self.member())? {
            if other == self.chat {
                continue;
            }
            let s = sessions.get(self.tx, self.member(), &other)?;
            let waiting = s.dialog.as_ref().is_some_and(|d| {
                self.scripts
                    .flow(&d.flow)
                    .and_then(|f| f.steps.get(d.step))
                    .is_some_and(|st| matches!(st.kind, StepKind::Images { .. }))
            });
            if waiting {
                return Ok(Some((other, s)));
            }
        }
        Ok(None)
    }

    /// Advance the dialog of another chat (`other_chat`) with this message's input.
    fn advance_elsewhere(
        &mut self,
        other_chat: String,
        other: Session,
        text: Option<&str>,
        images: Vec<String>,
    ) -> Step {
        let flow_name = other
            .dialog
            .as_ref()
            .and_then(|d| self.scripts.flow(&d.flow))
            .map(|f| f.name.clone())
            .unwrap_or_default();
        self.say(format!("已转到您在群聊中进行的“{flow_name}”。"));
        let own = std::mem::replace(&mut self.session, other);
        let advanced = self.advance(text, images);
        let mut other = std::mem::replace(&mut self.session, own);
        advanced?;
        other.last_active = self.now;
        self.engine
            .sessions
            .put(self.tx, self.member(), &other_chat, &other)?;
        Ok(())
    }

    /// The prompt of the running dialog, to repeat after a global word.
    fn current_prompt(&self) -> Option<String> {
        let d = self.session.dialog.as_ref()?;
        let flow = self.scripts.flow(&d.flow)?;
        Some(format!(
            "（继续当前提单）{}",
            eval::prompt(flow, d, self.ctx())
        ))
    }

    fn on_global(&mut self, word: GlobalWord) -> Step {
        let global = &self.scripts.global;
        match word {
            GlobalWord::Cancel => {
                self.session.pending = None;
                if self.session.dialog.take().is_some() {
                    self.say(global.cancelled.clone());
                } else {
                    self.say(global.nothing_to_cancel.clone());
                }
                return Ok(());
            }
            GlobalWord::Restart => {
                let flow = self
                    .session
                    .dialog
                    .as_ref()
                    .and_then(|d| self.scripts.flow(&d.flow))
                    .or_else(|| self.scripts.flow("report"));
                if let Some(flow) = flow {
                    self.say(global.restarted.clone());
                    self.begin(flow, Answers::default());
                }
                return Ok(());
            }
            GlobalWord::Help => self.say(super::HELP_TEXT),
            GlobalWord::Human => {
                // With an open ticket (this chat's first), the request is flagged on it: the
                // queue shows it until a handler takes it, and the agent hears who did.
                let flagged = match self
                    .prep
                    .tickets
                    .iter()
                    .filter(|t| t.status.is_open())
                    .max_by_key(|t| {
                        (
                            t.channel == self.inbound.channel && t.chat_id == self.inbound.chat_id,
                            t.id,
                        )
                    }) {
                    Some(t) => {
                        let t = self.engine.tickets.request_human_in::<TicketError>(
                            self.tx,
                            t.id,
                            &self.inbound.sender,
                            self.now,
                        );
                        match t {
                            Ok(t) => Some(t),
                            Err(Abort::User(_)) => None,
                            Err(Abort::Fail(f)) => return Err(Abort::Fail(f)),
                        }
                    }
                    None => None,
                };
                match &flagged {
                    Some(t) => {
                        self.changed.push(t.id);
                        self.say(format!(
                            "已通知处理人员，您的工单 {} 已标记为“请求人工”。有人接手后会告诉您是谁。",
                            t.number
                        ));
                    }
                    None => self.say(global.human_notice.clone()),
                }
                let open: Vec<Ticket> = self
                    .prep
                    .tickets
                    .iter()
                    .filter(|t| t.status.is_open())
                    .cloned()
                    .collect();
                self.engine.outbox.stage(
                    self.tx,
                    &Destination::Robot,
                    Message::Markdown {
                        content: notify::robot_human(&self.prep.label, &open),
                    },
                    &format!("human/{}", self.inbound.sender),
                )?;
            }
            GlobalWord::Progress => {
                let text = self.progress_text()?;
                self.say(text);
            }
        }
        if let Some(p) = self.current_prompt() {
            self.say(p);
        }
        Ok(())
    }

    /// Feed the input to the running dialog; file the ticket when the flow submits.
    fn advance(&mut self, text: Option<&str>, images: Vec<String>) -> Step {
        let Some(mut dialog) = self.session.dialog.take() else {
            return Ok(());
        };
        let Some(flow) = self.scripts.flow(&dialog.flow) else {
            self.say("流程已更新，请发送“提单”重新开始。");
            return Ok(());
        };
        // An admin changed the steps since this dialog began: its answers no longer fit.
        if !dialog.shape.is_empty() && dialog.shape != flow.shape {
            self.say(
                "抱歉，提单步骤刚刚更新了，请发送“提单”重新开始（之前填写的内容需要重新填写）。",
            );
            return Ok(());
        }
        let input = Input { text, images };
        let outcome = eval::advance(flow, &mut dialog, &input, self.ctx(), &self.scripts.global);
        self.replies.extend(outcome.replies);
        match outcome.action {
            Action::Continue => self.session.dialog = Some(dialog),
            Action::Cancel => {}
            Action::Submit => self.file(dialog.answers)?,
        }
        Ok(())
    }

    /// File the ticket a finished intake collected.
    fn file(&mut self, a: Answers) -> Step {
        let (Some(customer_id), Some(system), Some(description)) =
            (a.customer_id, a.system, a.description)
        else {
            self.say("信息不完整，请发送“提单”重新开始。");
            return Ok(());
        };
        let new = NewTicket {
            reporter: self.inbound.sender.clone(),
            reporter_name: self.prep.name.clone(),
            channel: self.inbound.channel,
            chat_type: self.inbound.chat_type,
            chat_id: self.inbound.chat_id.clone(),
            customer_id,
            system,
            description,
            screenshots: a.screenshots,
        };
        let t = self.engine.tickets.create_in(self.tx, &new, self.now)?;
        self.changed.push(t.id);
        let report = Report {
            system: &t.system,
            text: &t.description,
            reporter: &t.reporter,
            ticket: Some(&t),
        };
        match self.report(&report, true)? {
            // A known problem: the confirmation says so, with the incident.
            Some(incident) => self.say(format!(
                "{}\n\n{}",
                notify::filed(&t),
                crate::incidents::notify::known_issue(&incident)
            )),
            None => self.say(notify::filed(&t)),
        }
        Ok(())
    }

    /// Count and cluster a report (outbreak detection), or with `cluster` false only match
    /// it to a known incident; returns the incident it is part of.
    pub(super) fn report(&mut self, report: &Report<'_>, cluster: bool) -> Step<Option<Incident>> {
        let incidents = &self.engine.incidents;
        let r = if cluster {
            incidents.report_in::<Infallible>(self.tx, report, self.now)?
        } else {
            incidents.known_in::<Infallible>(self.tx, report, self.now)?
        };
        self.changed.extend(r.changed_tickets);
        self.changed_incidents.extend(r.changed_incidents);
        Ok(r.incident)
    }

    /// "不是同一问题": the member's report leaves the incident it was matched to (their
    /// newest ticket in an active incident, or their subscription), and the ticket goes on
    /// as an ordinary one. Returns whether there was one.
    fn not_the_same_problem(&mut self) -> Step<bool> {
        let ticket = self
            .prep
            .tickets
            .iter()
            .filter(|t| t.status.is_open())
            .find_map(|t| t.incident.clone().map(|i| (t, i)));
        let left = match &ticket {
            Some((t, number)) => self.engine.incidents.detach_in::<Infallible>(
                self.tx,
                self.member(),
                Some(t),
                number,
                self.now,
            )?,
            None => {
                let mut left = None;
                for number in self.prep.subscribed.clone() {
                    left = self.engine.incidents.detach_in::<Infallible>(
                        self.tx,
                        self.member(),
                        None,
                        &number,
                        self.now,
                    )?;
                    if left.is_some() {
                        break;
                    }
                }
                left
            }
        };
        let Some(incident) = left else {
            return Ok(false);
        };
        self.changed_incidents.push(incident.id);
        match ticket {
            Some((t, _)) => {
                self.changed.push(t.id);
                self.say(format!(
                    "好的，工单 {} 已与事件 {} 取消关联，处理人员会单独处理您的问题。",
                    t.number, incident.number
                ));
            }
            None => self.say(format!(
                "好的，您不会再收到事件 {} 的通知。需要处理人员跟进请回复“提单”。",
                incident.number
            )),
        }
        Ok(true)
    }

    /// Start `flow` for the member, prefilled with `prefill`. The dialog replaces any
    /// pending FAQ question and the text remembered for a burst.
    pub(super) fn begin(&mut self, flow: &Flow, prefill: Answers) {
        let (d, replies) = eval::start(flow, prefill, self.ctx());
        self.session.dialog = Some(d);
        self.session.pending = None;
        self.session.last_text = None;
        self.replies.extend(replies);
    }
}
