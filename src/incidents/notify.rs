//! The texts of incident notices: to the handler group (robot markdown: opened, 重大,
//! resolved, reopened) and to the reporters of linked tickets (plain text, which renders
//! for members reading through WeChat too). Free text is masked here.

use super::model::Incident;
use crate::ident::{mask_text, mask_truncate};

fn minutes(ms: i64) -> String {
    let m = (ms / 60_000).max(0);
    if m >= 60 {
        format!("{} 小时 {} 分钟", m / 60, m % 60)
    } else {
        format!("{m} 分钟")
    }
}

/// The handler group: a new incident.
pub fn robot_opened(i: &Incident, link: &str) -> String {
    format!(
        "**<font color=\"warning\">新事件 {}</font>**\n>{}\n>系统：{}\n>级别：{} · {}\n>来源：{}\n[在控制台处理]({link})",
        i.number,
        mask_truncate(&i.title, 80),
        i.system,
        i.severity.label(),
        i.priority.key(),
        i.opened_by,
    )
}

/// The handler group: the incident became 重大事件 (once).
pub fn robot_major(i: &Incident, reason: &str, link: &str) -> String {
    format!(
        "**<font color=\"warning\">重大事件 {}</font>**\n>{}\n>系统：{}\n>原因：{reason}\n>关联工单：{} 个\n[查看事件]({link})",
        i.number,
        mask_truncate(&i.title, 80),
        i.system,
        i.tickets.len(),
    )
}

/// The handler group: resolved, with how long it took.
pub fn robot_resolved(i: &Incident, link: &str) -> String {
    format!(
        "**<font color=\"info\">事件已恢复 {}</font>**\n>{}\n>系统：{}\n>持续：{}\n>说明：{}\n[查看事件]({link})",
        i.number,
        mask_truncate(&i.title, 80),
        i.system,
        minutes(i.mttr_ms.unwrap_or_default()),
        mask_truncate(i.resolution.as_deref().unwrap_or("无"), 200),
    )
}

/// The handler group: a resolved incident is open again.
pub fn robot_reopened(i: &Incident, reason: &str, link: &str) -> String {
    format!(
        "**<font color=\"warning\">事件重新打开 {}</font>**\n>{}\n>原因：{}\n[查看事件]({link})",
        i.number,
        mask_truncate(&i.title, 80),
        mask_truncate(reason, 200),
    )
}

/// A reporter: their ticket is now part of an incident.
pub fn reporter_linked(i: &Incident, ticket: &str) -> String {
    format!(
        "您的工单 {ticket} 已并入事件 {}（{}）。这是已知问题，处理组正在处理，恢复后会第一时间通知您。\n如果您遇到的不是这个问题，请回复“不是同一问题”。",
        i.number,
        mask_truncate(&i.title, 60),
    )
}

/// A reporter: a handler's update.
pub fn reporter_update(i: &Incident, text: &str) -> String {
    format!(
        "事件 {}（{}）处理进展：\n{}",
        i.number,
        mask_truncate(&i.title, 60),
        mask_text(text.trim()),
    )
}

/// A reporter: the incident is resolved.
pub fn reporter_resolved(i: &Incident) -> String {
    let note = i
        .resolution
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .map(|n| format!("\n说明：{}", mask_text(n.trim())))
        .unwrap_or_default();
    format!(
        "事件 {}（{}）已恢复。{note}\n如果您的问题仍未解决，请直接回复说明。",
        i.number,
        mask_truncate(&i.title, 60),
    )
}

/// A reporter: what they reported is a known incident (the reply to their report, or a
/// notice when their report made the incident).
pub fn known_issue(i: &Incident) -> String {
    format!(
        "这是已知问题，处理组正在处理，恢复后会第一时间通知您。\n事件：{}（{}）\n如果您遇到的不是这个问题，请回复“不是同一问题”。",
        i.number,
        mask_truncate(&i.title, 60),
    )
}

/// A member who asked (no ticket): their question is part of an incident.
pub fn reporter_subscribed(i: &Incident) -> String {
    known_issue(i)
}
