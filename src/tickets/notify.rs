//! The texts of ticket notices: to the agent (plain text — markdown and cards do not render
//! for members reading through WeChat, so a card is only ever an extra) and to the handler
//! group (robot markdown). Identifiers and numbers in free text are always masked here.

use serde_json::{Value, json};

use super::Ticket;
use super::state::Status;
use crate::ident::mask_truncate;

/// Filing confirmation to the agent.
pub fn filed(t: &Ticket) -> String {
    format!(
        "工单已提交：{}\n客户：{}\n系统：{}\n问题：{}\n截图：{} 张\n处理进展会通过“事件助手”应用通知您；发送“进度”可随时查询。",
        t.number,
        t.customer_id.masked_label(),
        t.system,
        mask_truncate(&t.description, 60),
        t.screenshots.len()
    )
}

/// New-ticket notice to the handler group (markdown).
pub fn robot_new(t: &Ticket, link: &str) -> String {
    format!(
        "**新工单 {}**\n>报告人：{}\n>客户：{}\n>系统：{}\n>问题：{}\n>截图：{} 张\n[在控制台处理]({link})",
        t.number,
        t.reporter_label(),
        t.customer_id.masked_label(),
        t.system,
        mask_truncate(&t.description, 100),
        t.screenshots.len()
    )
}

/// Status change pushed to the agent.
pub fn status_changed(t: &Ticket, from: Status, to: Status, reason: &str) -> String {
    let reason = reason.trim();
    match to {
        Status::NeedInfo => format!(
            "工单 {} 需要您补充信息：\n{}\n直接在这里回复文字或截图即可补充到该工单。",
            t.number,
            if reason.is_empty() {
                "请补充问题的更多细节。"
            } else {
                reason
            }
        ),
        Status::Resolved => format!(
            "工单 {} 已解决。{}\n请在下面的卡片里评价（也可以直接回复“已解决”或“未解决”）。",
            t.number,
            if reason.is_empty() {
                String::new()
            } else {
                format!("\n处理说明：{reason}")
            }
        ),
        Status::InProgress if from == Status::Resolved => format!(
            "工单 {} 已重新打开，处理人员会继续跟进。{}",
            t.number,
            if reason.is_empty() {
                String::new()
            } else {
                format!("\n{reason}")
            }
        ),
        _ => format!(
            "工单 {} 状态更新：{} → {}{}",
            t.number,
            from.label(),
            to.label(),
            if reason.is_empty() {
                String::new()
            } else {
                format!("\n说明：{reason}")
            }
        ),
    }
}

/// A handler's reply pushed to the agent.
pub fn handler_reply(t: &Ticket, text: &str) -> String {
    format!(
        "工单 {} 处理人员回复：\n{}\n\n如需补充，请回复“补充 {} 内容”。",
        t.number,
        text.trim(),
        t.number
    )
}

/// The rating card sent with the 已解决 text (an extra; the text carries the same ask).
pub fn rating_card(t: &Ticket, task_id: &str) -> Value {
    json!({
        "card_type": "button_interaction",
        "source": { "desc": "事件助手" },
        "main_title": { "title": format!("工单 {} 已解决", t.number), "desc": "问题解决了吗？请选择满意度后点击按钮" },
        "horizontal_content_list": [
            { "keyname": "系统", "value": t.system },
            { "keyname": "问题", "value": mask_truncate(&t.description, 30) },
        ],
        "task_id": task_id,
        "button_selection": {
            "question_key": "score",
            "title": "满意度",
            "option_list": [
                { "id": "5", "text": "5分 非常满意" },
                { "id": "4", "text": "4分 满意" },
                { "id": "3", "text": "3分 一般" },
                { "id": "2", "text": "2分 不满意" },
                { "id": "1", "text": "1分 非常不满意" },
            ],
            "selected_id": "5",
        },
        "button_list": [
            { "text": "已解决", "style": 1, "key": "rate_solved" },
            { "text": "未解决", "style": 2, "key": "rate_unsolved" },
        ],
    })
}

/// Robot notice when an agent says the resolution did not solve it.
pub fn robot_reopened(t: &Ticket, link: &str) -> String {
    format!(
        "**工单 {} 被报告人标记为未解决，已重新打开**\n>报告人：{}\n>处理人：{}\n[查看工单]({link})",
        t.number,
        t.reporter_label(),
        t.assignee.as_deref().unwrap_or("未分配")
    )
}

/// Robot notice when the agent adds information to a ticket waiting for it.
pub fn robot_supplemented(t: &Ticket, link: &str) -> String {
    let assignee = t
        .assignee
        .as_deref()
        .map(|a| format!("\n>处理人：{a}"))
        .unwrap_or_default();
    format!(
        "**工单 {} 收到补充信息**\n>报告人：{}\n>状态：{}{assignee}\n[查看工单]({link})",
        t.number,
        t.reporter_label(),
        t.status.label()
    )
}

/// Robot notice when an agent asks for a person.
pub fn robot_human(reporter: &str, open: &[Ticket]) -> String {
    let mut s = format!("**{reporter} 请求人工协助**");
    for t in open.iter().take(3) {
        s.push_str(&format!("\n>{}（{}）", t.number, t.status.label()));
    }
    s
}

/// Robot notice when an SLA clock runs over (sent once per clock).
pub fn robot_overdue(t: &Ticket, clock: &str, state: &str, link: &str) -> String {
    format!(
        "**<font color=\"warning\">工单 {} {}超时</font>**\n>{}\n>优先级：{}\n>状态：{}\n>处理人：{}\n[立即处理]({link})",
        t.number,
        clock,
        state,
        t.priority.label(),
        t.status.label(),
        t.assignee.as_deref().unwrap_or("未分配")
    )
}
