//! What an agent does with a ticket already filed (routing step 3 and the progress word):
//! rate a resolved ticket, add to a ticket (`补充 <工单号> …`, anything while it is 待补充,
//! and free text or screenshots while a handler is talking with them about it), and ask for
//! progress.
//!
//! The follow-up rule: after a handler replies to the agent or changes the ticket's status,
//! the agent's free text and screenshots in the same chat go to that ticket, confirmed in one
//! line, until it is resolved or after `conversation.follow_up_hours` of silence. Commands
//! (global words), 提单 and 新问题 are never follow-ups. With several such tickets the bot
//! asks which one once and remembers the answer.

use super::route::{Step, Turn};
use super::session::Pending;
use crate::store::Abort;
use crate::tickets::{Ticket, TicketError};

/// How a supplement is confirmed to the agent.
#[derive(Clone, Copy)]
pub(super) enum Confirm {
    /// "已将补充说明添加到工单 …（处理中），处理人员会看到。"
    Full,
    /// "已补充到工单 …，处理人员会看到。" (a follow-up in a conversation)
    Short,
}

impl<'a> Turn<'a, '_> {
    /// The member's tickets a handler is talking with them about, in this chat.
    pub(super) fn in_conversation(&self) -> Vec<&'a Ticket> {
        let window = self.engine.settings.follow_up_window;
        let prep: &'a super::Prepared = self.prep;
        prep.tickets
            .iter()
            .filter(|t| {
                t.in_conversation(self.now, window)
                    && t.channel == self.inbound.channel
                    && t.chat_id == self.inbound.chat_id
            })
            .collect()
    }
}

impl Turn<'_, '_> {
    /// Rate ticket `id`; returns the label for the card, or `None` when refused (the reason is
    /// said to the member).
    pub(super) fn rate(
        &mut self,
        id: u64,
        solved: bool,
        score: Option<u8>,
    ) -> Step<Option<String>> {
        let rated = self.engine.tickets.rate_in::<TicketError>(
            self.tx,
            id,
            self.member(),
            solved,
            score,
            self.now,
        );
        let t = match rated {
            Ok(t) => t,
            Err(Abort::User(TicketError::IllegalTransition { .. })) => {
                self.say("这个工单已经评价过或不在“已解决”状态，无需再评价。");
                return Ok(None);
            }
            Err(Abort::User(e)) => {
                self.say(e.to_string());
                return Ok(None);
            }
            Err(Abort::Fail(f)) => return Err(Abort::Fail(f)),
        };
        self.changed.push(t.id);
        let stars = score
            .map(|s| format!("，满意度 {s} 分"))
            .unwrap_or_default();
        if solved {
            self.say(format!("感谢您的评价{stars}！工单 {} 已关闭。", t.number));
        } else {
            self.say(format!(
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

    /// Add `text` and `images` to ticket `id`'s thread.
    pub(super) fn supplement(
        &mut self,
        id: u64,
        text: &str,
        images: &[String],
        confirm: Confirm,
    ) -> Step {
        let added = self.engine.tickets.supplement_in::<TicketError>(
            self.tx,
            id,
            self.member(),
            text,
            images,
            self.now,
        );
        match added {
            Ok(t) => {
                self.changed.push(t.id);
                if let Confirm::Short = confirm {
                    self.say(format!("已补充到工单 {}，处理人员会看到。", t.number));
                    return Ok(());
                }
                let what = match (text.trim().is_empty(), images.len()) {
                    (false, 0) => "补充说明".to_owned(),
                    (true, n) => format!("{n} 张截图"),
                    (false, n) => format!("补充说明和 {n} 张截图"),
                };
                self.say(format!(
                    "已将{what}添加到工单 {}（{}），处理人员会看到。",
                    t.number,
                    t.status.label()
                ));
            }
            Err(Abort::User(TicketError::Empty)) => {
                self.say("请在工单号后写上要补充的内容，例如：补充 IT20261121-0001 客户已重启App，问题依旧");
            }
            Err(Abort::User(e)) => self.say(e.to_string()),
            Err(Abort::Fail(f)) => return Err(Abort::Fail(f)),
        }
        Ok(())
    }

    /// A follow-up: to the one ticket in conversation, to the one chosen before, or ask.
    pub(super) fn follow_up(
        &mut self,
        talking: &[&Ticket],
        text: Option<&str>,
        images: Vec<String>,
    ) -> Step {
        let chosen = self
            .session
            .follow_up
            .filter(|id| talking.iter().any(|t| t.id == *id));
        let id = match (talking, chosen) {
            ([one], _) => one.id,
            (_, Some(id)) => id,
            _ => {
                let list: Vec<String> = talking
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let what = crate::ident::mask_truncate(&t.description, 20);
                        format!("{}. {} · {} · {what}", i + 1, t.number, t.system)
                    })
                    .collect();
                self.say(format!(
                    "您有 {} 个工单正在处理中，这条消息补充到哪一个？回复序号：\n{}\n\n是新问题请回复“新问题”。",
                    talking.len(),
                    list.join("\n")
                ));
                self.session.pending = Some(Pending::FollowUpChoice {
                    tickets: talking.iter().map(|t| t.id).collect(),
                    text: text.unwrap_or_default().to_owned(),
                    images,
                });
                return Ok(());
            }
        };
        self.supplement(id, text.unwrap_or_default(), &images, Confirm::Short)
    }

    /// The answer to "补充到哪一个？": add the kept message there and remember the choice.
    pub(super) fn on_follow_up_choice(
        &mut self,
        answer: &str,
        tickets: &[u64],
        kept: &str,
        images: &[String],
    ) -> Step<bool> {
        let Some(id) = crate::ident::normalize(answer)
            .parse::<usize>()
            .ok()
            .and_then(|n| tickets.get(n.checked_sub(1)?))
            .copied()
        else {
            return Ok(false);
        };
        self.session.follow_up = Some(id);
        self.supplement(id, kept, images, Confirm::Short)?;
        Ok(true)
    }

    /// The member's newest open ticket whose number ends with `digits` (`0003`, `3`).
    pub(super) fn own_ticket_ending(&self, digits: &str) -> Option<u64> {
        let wanted = digits.parse::<u64>().ok()?;
        self.prep
            .tickets
            .iter()
            .filter(|t| t.status.is_open())
            .find(|t| {
                t.number
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    == Some(wanted)
            })
            .map(|t| t.id)
    }

    /// The member's open ticket, when there is exactly one.
    pub(super) fn only_open_ticket(&self) -> Option<u64> {
        let mut open = self.prep.tickets.iter().filter(|t| t.status.is_open());
        match (open.next(), open.next()) {
            (Some(t), None) => Some(t.id),
            _ => None,
        }
    }

    /// How to name the ticket to add to, with the member's open tickets.
    pub(super) fn supplement_usage(&self) -> String {
        let open: Vec<String> = self
            .prep
            .tickets
            .iter()
            .filter(|t| t.status.is_open())
            .take(5)
            .map(|t| format!("{} · {}", t.number, t.system))
            .collect();
        let mut text =
            "请写明要补充到哪个工单，例如：补充 IT20261121-0001 客户已重启App，问题依旧\n\
                        也可以只写工单号的后几位：补充 0001 …"
                .to_owned();
        if open.is_empty() {
            text.push_str("\n您目前没有进行中的工单。");
        } else {
            text.push_str(&format!("\n您进行中的工单：\n{}", open.join("\n")));
        }
        text
    }

    /// The member's open tickets (and those waiting for a rating). The list comes from the
    /// prepare step; each ticket is re-read in the transaction (no other sled call may run
    /// inside it: sled holds its global lock for the whole closure).
    pub(super) fn progress_text(&self) -> Step<String> {
        let mut lines = Vec::new();
        for t in &self.prep.tickets {
            // Re-read inside the transaction: this turn may have changed it.
            let Some(t) = self.engine.tickets.get_in(self.tx, t.id)? else {
                continue;
            };
            if !(t.status.is_open() || t.awaits_rating()) {
                continue;
            }
            let when = chrono::DateTime::from_timestamp_millis(t.updated_at)
                .unwrap_or_default()
                .with_timezone(&self.engine.settings.utc_offset)
                .format("%m-%d %H:%M");
            lines.push(format!(
                "{}. {} · {} · {}（更新于 {when}）\n   {}",
                lines.len() + 1,
                t.number,
                t.system,
                t.status.label(),
                crate::ident::mask_truncate(&t.description, 30)
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
}
