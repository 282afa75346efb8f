//! What an agent does with a ticket already filed (routing step 3 and the progress word):
//! rate a resolved ticket, add to a ticket (`补充 <工单号> …`, or anything while it is
//! 待补充), and ask for progress.

use super::route::{Step, Turn};
use crate::store::Abort;
use crate::tickets::TicketError;

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
    pub(super) fn supplement(&mut self, id: u64, text: &str, images: &[String]) -> Step {
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
