//! The console's operations, shared by the pages and the API: each validates its input and
//! calls one ticket-service operation (one transaction: event + outbox), off the async
//! threads.

use serde::Deserialize;

use super::auth::Caller;
use crate::http::AppState;
use crate::http::error::ConsoleError;
use crate::kb::Entry;
use crate::outbox::Status as Delivery;
use crate::tickets::{Category, EventKind, Priority, Status, Ticket, TicketEvent};

/// Run blocking work (sled transactions, argon2, files) on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ConsoleError> + Send + 'static,
) -> Result<T, ConsoleError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ConsoleError::internal)?
}

/// Fields an action may carry (form fields or JSON).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ActionInput {
    pub text: String,
    pub reason: String,
    pub status: String,
    pub assignee: String,
    pub category: String,
    pub priority: String,
    /// `merge`: the ticket that carries on.
    pub into: String,
    /// `link` / `unlink`: the related ticket.
    pub ticket: String,
    /// `macro`: the macro to apply.
    #[serde(rename = "macro")]
    pub macro_id: String,
    /// `reply`: the last event seq the handler saw; a newer reply or status change by
    /// someone else asks for `confirm` first.
    pub seen: String,
    pub confirm: String,
}

/// Logins of every console user (for the assignee lists).
pub fn logins(state: &AppState) -> Result<Vec<String>, ConsoleError> {
    Ok(state
        .accounts
        .users()?
        .into_iter()
        .map(|u| u.login)
        .collect())
}

/// Delivery state of every reply job in `events`.
pub fn deliveries(
    state: &AppState,
    events: &[TicketEvent],
) -> Result<Vec<(u64, Delivery)>, ConsoleError> {
    let jobs = events.iter().flat_map(|e| match &e.kind {
        EventKind::Reply { jobs, .. } => jobs.as_slice(),
        _ => &[],
    });
    Ok(jobs
        .map(|&id| Ok((id, state.outbox.status(id)?)))
        .collect::<Result<_, crate::store::Error>>()?)
}

/// A handler's change to a ticket, validated.
enum Op {
    Reply(String),
    Note(String),
    Status(Status, String),
    Assign(Option<String>),
    Category(Category),
    Priority(Priority),
}

/// Perform `action` on ticket `number`; returns a short code for the confirmation.
pub async fn act(
    state: &AppState,
    caller: &Caller,
    number: &str,
    action: &str,
    input: ActionInput,
) -> Result<&'static str, ConsoleError> {
    let bad = |m: &str| ConsoleError::BadInput(m.into());
    if action == "reply" && input.confirm.is_empty() {
        check_newer(state, caller, number, &input.seen).await?;
    }
    let (op, code) = match action {
        "reply" => (Op::Reply(input.text), "replied"),
        "note" => (Op::Note(input.text), "noted"),
        "status" => {
            let to = Status::parse(&input.status).ok_or_else(|| bad("未知的状态"))?;
            (Op::Status(to, input.reason), "status")
        }
        "claim" => (Op::Assign(Some(caller.login.clone())), "assigned"),
        "assign" => {
            let assignee = input.assignee.trim().to_owned();
            if assignee.is_empty() {
                (Op::Assign(None), "assigned")
            } else if logins(state)?.contains(&assignee) {
                (Op::Assign(Some(assignee)), "assigned")
            } else {
                return Err(bad("没有这个处理人"));
            }
        }
        "category" => {
            let c = Category::parse(&input.category).ok_or_else(|| bad("未知的问题分类"))?;
            (Op::Category(c), "category")
        }
        "priority" => {
            let p = Priority::parse(&input.priority).ok_or_else(|| bad("未知的优先级"))?;
            (Op::Priority(p), "priority")
        }
        "publish" => return publish_ticket(state, number).await.map(|_| "published"),
        "macro" => return apply_macro(state, caller, number, &input.macro_id).await,
        "merge" | "link" | "unlink" => {
            let other = if action == "merge" {
                &input.into
            } else {
                &input.ticket
            };
            let other = other.trim().to_uppercase();
            if other.is_empty() {
                return Err(bad("请填写工单号"));
            }
            let (tickets, number, me, action) = (
                state.tickets.clone(),
                number.to_owned(),
                caller.login.clone(),
                action.to_owned(),
            );
            return blocking(move || {
                Ok(match action.as_str() {
                    "merge" => tickets.merge(&number, &other, &me).map(|_| "merged")?,
                    "link" => tickets
                        .link_tickets(&number, &other, &me, false)
                        .map(|_| "linked")?,
                    _ => tickets
                        .link_tickets(&number, &other, &me, true)
                        .map(|_| "unlinked")?,
                })
            })
            .await;
        }
        _ => return Err(ConsoleError::NotFound),
    };
    let tickets = state.tickets.clone();
    let (number, me) = (number.to_owned(), caller.login.clone());
    blocking(move || {
        match op {
            Op::Reply(text) => tickets.reply(&number, &me, &text).map(drop),
            Op::Note(text) => tickets.note(&number, &me, &text).map(drop),
            Op::Status(to, reason) => tickets.change_status(&number, &me, to, &reason).map(drop),
            Op::Assign(who) => tickets.assign(&number, &me, who.as_deref()).map(drop),
            Op::Category(c) => tickets.set_category(&number, &me, c).map(drop),
            Op::Priority(p) => tickets.set_priority(&number, &me, p).map(drop),
        }?;
        Ok(code)
    })
    .await
}

/// Refuse a reply when someone else replied or changed the status after event `seen`.
pub async fn check_newer(
    state: &AppState,
    caller: &Caller,
    number: &str,
    seen: &str,
) -> Result<(), ConsoleError> {
    let Ok(seen) = seen.trim().parse::<u64>() else {
        return Ok(()); // the API without `seen`: no check
    };
    let t = state
        .tickets
        .by_number(number)?
        .ok_or(ConsoleError::NotFound)?;
    let newer: Vec<String> = state
        .tickets
        .events(t.id)?
        .into_iter()
        .filter(|e| e.seq > seen)
        .filter(|e| !matches!(&e.actor, crate::tickets::Actor::Handler(h) if *h == caller.login))
        .filter_map(|e| match (&e.actor, &e.kind) {
            (crate::tickets::Actor::Handler(h), EventKind::Reply { .. }) => {
                Some(format!("{h} 回复了报告人"))
            }
            (actor, EventKind::Status { to, .. }) => {
                Some(format!("{} 把状态改为“{}”", actor.label(), to.label()))
            }
            _ => None,
        })
        .collect();
    if newer.is_empty() {
        Ok(())
    } else {
        Err(ConsoleError::Newer(newer.join("；")))
    }
}

/// Apply a macro: its steps in order (reply with its template filled in, status, assign to
/// the caller, priority). Checked first against the ticket as it is, so a macro that cannot
/// finish does nothing.
async fn apply_macro(
    state: &AppState,
    caller: &Caller,
    number: &str,
    id: &str,
) -> Result<&'static str, ConsoleError> {
    let id: u64 = id
        .trim()
        .parse()
        .map_err(|_| ConsoleError::BadInput("未知的宏".into()))?;
    let m = state
        .tools
        .get_macro(id)?
        .filter(|m| m.owner.as_deref().is_none_or(|o| o == caller.login))
        .ok_or(ConsoleError::NotFound)?;
    let t = state
        .tickets
        .by_number(number)?
        .ok_or(ConsoleError::NotFound)?;
    let status = match &m.steps.status {
        Some(s) => {
            Some(Status::parse(s).ok_or_else(|| ConsoleError::BadInput("宏里的状态无效".into()))?)
        }
        None => None,
    };
    if t.status == Status::Closed {
        return Err(crate::tickets::TicketError::Closed.into());
    }
    if let Some(to) = status {
        // A reply first moves a new ticket to 处理中.
        let from = if m.steps.template.is_some() && t.status == Status::New {
            Status::InProgress
        } else {
            t.status
        };
        if from != to && !from.can_become(to) {
            return Err(crate::tickets::TicketError::IllegalTransition { from, to }.into());
        }
        if to == Status::Resolved && t.category.is_none() {
            return Err(crate::tickets::TicketError::CategoryRequired.into());
        }
    }
    let reply = match m.steps.template {
        Some(tid) => {
            let tpl = state.tools.template(tid)?.ok_or(ConsoleError::NotFound)?;
            Some(crate::accounts::tools::fill(
                &tpl.body,
                &t.reporter_label(),
                &t.number,
                &t.system,
                &caller.login,
            ))
        }
        None => None,
    };
    let (tickets, number, me) = (
        state.tickets.clone(),
        number.to_owned(),
        caller.login.clone(),
    );
    let steps = m.steps.clone();
    blocking(move || {
        if let Some(text) = reply {
            tickets.reply(&number, &me, &text)?;
        }
        if let Some(to) = status {
            let cur = tickets.by_number(&number)?.ok_or(ConsoleError::NotFound)?;
            if cur.status != to {
                tickets.change_status(&number, &me, to, &steps.reason)?;
            }
        }
        if steps.assign_me {
            tickets.assign(&number, &me, Some(&me))?;
        }
        if let Some(p) = steps.priority.as_deref().and_then(Priority::parse) {
            tickets.set_priority(&number, &me, p)?;
        }
        Ok("macro")
    })
    .await
}

/// What a resolved ticket teaches: the resolution note, else the last handler reply.
/// The answer of an FAQ draft: what the handlers told the agent, in order, then the
/// resolution note (each at most once).
fn resolution_text(events: &[TicketEvent]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in events {
        let text = match &e.kind {
            EventKind::Reply { text, .. } => text.trim(),
            EventKind::Status {
                to: Status::Resolved,
                reason,
                ..
            } => reason.trim(),
            _ => continue,
        };
        if !text.is_empty() && !parts.iter().any(|p| p == text) {
            parts.push(text.to_owned());
        }
    }
    parts.join("\n\n")
}

/// The question of an FAQ draft: the description's first sentence, masked.
fn draft_question(description: &str) -> String {
    let first = description
        .split(['。', '！', '？', '!', '?', '\n'])
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or(description);
    crate::ident::mask_truncate(first, 40)
}

/// Draft a kb/ entry from a resolved ticket (not served until an admin publishes it).
pub async fn publish_ticket(state: &AppState, number: &str) -> Result<String, ConsoleError> {
    let (tickets, kb, dir) = (
        state.tickets.clone(),
        state.kb.clone(),
        state.cfg.paths.kb_dir.clone(),
    );
    let number = number.to_owned();
    blocking(move || {
        let t: Ticket = tickets.by_number(&number)?.ok_or(ConsoleError::NotFound)?;
        if !matches!(t.status, Status::Resolved | Status::Closed) {
            return Err(ConsoleError::BadInput(
                "只有已解决或已关闭的工单可以发布为知识库条目".into(),
            ));
        }
        // Named after its ticket, so an admin sees where it came from; not "draft-…", which
        // would stay in the id (and the reports) after publishing.
        let id = format!("faq-{}", t.number.to_lowercase());
        let path = dir.join(format!("{id}.md"));
        if path.exists() {
            return Err(ConsoleError::BadInput("这个工单已经有知识库草稿了".into()));
        }
        let events = tickets.events(t.id)?;
        let answer = resolution_text(&events);
        if answer.is_empty() {
            return Err(ConsoleError::BadInput(
                "这个工单没有处理人员的回复或解决说明，无法生成知识库草稿".into(),
            ));
        }
        let entry = Entry {
            id,
            question: draft_question(&t.description),
            similar: Vec::new(),
            system: t.system.clone(),
            tags: t
                .category
                .map(|c| vec![c.label().to_owned()])
                .unwrap_or_default(),
            draft: true,
            answer: crate::ident::mask_text(&answer),
            path: path.display().to_string(),
        };
        std::fs::write(&path, crate::kb::entry::render(&entry)).map_err(ConsoleError::internal)?;
        if let Err(e) = kb.reload_if_changed() {
            tracing::error!(error = %e, "knowledge base reload after drafting failed");
        }
        Ok(path.display().to_string())
    })
    .await
}

/// Publish draft `id` with the admin's edits.
pub async fn publish_draft(
    state: &AppState,
    id: &str,
    question: String,
    similar: String,
    answer: String,
) -> Result<(), ConsoleError> {
    if question.trim().is_empty() || answer.trim().is_empty() {
        return Err(ConsoleError::BadInput("问题和回答都不能为空".into()));
    }
    let (kb, dir, id) = (
        state.kb.clone(),
        state.cfg.paths.kb_dir.clone(),
        id.to_owned(),
    );
    blocking(move || {
        let loaded = crate::kb::entry::load_dir(&dir).map_err(ConsoleError::internal)?;
        let mut entry = loaded
            .entries
            .into_iter()
            .find(|e| e.id == id && e.draft)
            .ok_or(ConsoleError::NotFound)?;
        entry.question = question.trim().to_owned();
        entry.similar = similar
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        entry.answer = answer.trim().to_owned();
        entry.draft = false;
        std::fs::write(&entry.path, crate::kb::entry::render(&entry))
            .map_err(ConsoleError::internal)?;
        match kb.reload_if_changed() {
            Ok(Some(r)) if r.errors.iter().any(|e| e.path == entry.path) => Err(
                ConsoleError::BadInput("条目保存后无法解析，请检查内容".into()),
            ),
            Ok(_) => Ok(()),
            Err(e) => Err(ConsoleError::internal(e)),
        }
    })
    .await
}

/// The text shown after a successful action.
pub fn confirmation(code: &str) -> Option<&'static str> {
    Some(match code {
        "replied" => "回复已提交，正在推送给报告人",
        "noted" => "内部备注已保存（不会推送）",
        "status" => "状态已更新，已通知报告人",
        "assigned" => "处理人已更新",
        "category" => "问题分类已保存",
        "priority" => "优先级已保存",
        "published" => "已生成知识库草稿，待管理员审核发布",
        "retried" => "已重新排队投递",
        "user_added" => "账号已添加",
        "draft_published" => "知识库条目已发布",
        "incident_linked" => "工单已关联到事件，报告人会收到事件进展",
        "merged" => "已合并，报告人已收到通知",
        "macro" => "宏已执行",
        "linked" => "已关联",
        "unlinked" => "已取消关联",
        "incident_unlinked" => "已取消关联事件",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_question_is_the_first_sentence_masked() {
        assert_eq!(
            draft_question("客户13812345678夜盘无法委托期权。试了三次都失败"),
            "客户138＊＊＊＊5678夜盘无法委托期权"
        );
    }
}
