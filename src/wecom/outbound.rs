//! What we send to WeCom: message bodies, their destinations and the byte limits.
//!
//! Limits (as WeCom documents them): app `text`/`markdown` 2048 bytes, robot `text` 2048 and `markdown`
//! 4096 bytes; longer text is split on UTF-8 boundaries (preferring line breaks) into parts
//! that are sent in order. AI-bot `response_url` replies take markdown up to 20480 bytes.

use serde::{Deserialize, Serialize};

pub const APP_TEXT_LIMIT: usize = 2048;
pub const ROBOT_TEXT_LIMIT: usize = 2048;
pub const ROBOT_MARKDOWN_LIMIT: usize = 4096;
pub const BOT_REPLY_LIMIT: usize = 20480;

/// A message body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msgtype", rename_all = "snake_case")]
pub enum Message {
    Text {
        content: String,
        /// Robot only: userids to @-mention.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentioned: Vec<String>,
    },
    Markdown {
        content: String,
    },
    TextCard {
        title: String,
        description: String,
        url: String,
        btntxt: String,
    },
    /// A full `template_card` object as WeCom documents it.
    TemplateCard {
        card: serde_json::Value,
    },
    /// An image from the media store (sha256), uploaded with `media/upload` when sent.
    Image {
        media: String,
    },
    /// A file from the media store, with the name the agent sees.
    File {
        media: String,
        name: String,
    },
}

impl Message {
    pub fn text(content: impl Into<String>) -> Message {
        Message::Text {
            content: content.into(),
            mentioned: Vec::new(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Message::Text { .. } => "text",
            Message::Markdown { .. } => "markdown",
            Message::TextCard { .. } => "textcard",
            Message::TemplateCard { .. } => "template_card",
            Message::Image { .. } => "image",
            Message::File { .. } => "file",
        }
    }

    /// The readable text of the message (for the console's delivery view and previews).
    pub fn preview(&self) -> String {
        match self {
            Message::Text { content, .. } | Message::Markdown { content } => content.clone(),
            Message::TextCard {
                title, description, ..
            } => format!("{title}\n{description}"),
            Message::TemplateCard { card } => card
                .pointer("/main_title/title")
                .and_then(|v| v.as_str())
                .unwrap_or("[卡片消息]")
                .to_owned(),
            Message::Image { .. } => "[图片]".to_owned(),
            Message::File { name, .. } => format!("[文件] {name}"),
        }
    }
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Destination {
    /// `message/send` to one member, from the self-built app.
    Member { userid: String },
    /// The group robot webhook of the handler group.
    Robot,
    /// An AI-bot `response_url` (single use); when it is spent or expired the message goes to
    /// `fallback_userid` through the app instead.
    BotResponse {
        url: String,
        fallback_userid: String,
    },
    /// `message/update_template_card` for a card a member clicked.
    CardUpdate {
        userid: String,
        response_code: String,
    },
}

impl Destination {
    /// The rate-limit and ordering lane: messages in one lane are delivered in order and
    /// share a per-minute budget.
    pub fn lane(&self) -> String {
        match self {
            Destination::Member { userid }
            | Destination::BotResponse {
                fallback_userid: userid,
                ..
            }
            | Destination::CardUpdate { userid, .. } => format!("member/{userid}"),
            Destination::Robot => "robot".to_owned(),
        }
    }
}

/// The byte limit for `msg` sent to `dest`, if the message is splittable text.
pub fn text_limit(dest: &Destination, msg: &Message) -> Option<usize> {
    match (dest, msg) {
        (Destination::Robot, Message::Markdown { .. }) => Some(ROBOT_MARKDOWN_LIMIT),
        (Destination::Robot, Message::Text { .. }) => Some(ROBOT_TEXT_LIMIT),
        (Destination::BotResponse { .. }, Message::Markdown { .. } | Message::Text { .. }) => {
            Some(BOT_REPLY_LIMIT)
        }
        (_, Message::Text { .. } | Message::Markdown { .. }) => Some(APP_TEXT_LIMIT),
        _ => None,
    }
}

/// Split `text` into parts of at most `limit` bytes, never inside a UTF-8 character, preferring
/// to cut after a newline, then after Chinese or ASCII sentence punctuation, in the last
/// quarter of each part. Parts are returned in order and concatenate back to `text`.
pub fn split_utf8(text: &str, limit: usize) -> Vec<String> {
    assert!(limit >= 4, "limit must fit any UTF-8 character");
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > limit {
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let window = &rest[..cut];
        let floor = cut - cut / 4;
        let preferred = window
            .rfind('\n')
            .map(|i| i + 1)
            .filter(|&i| i >= floor)
            .or_else(|| {
                window
                    .char_indices()
                    .rev()
                    .take_while(|(i, _)| *i >= floor)
                    .find(|(_, c)| matches!(c, '。' | '！' | '？' | '；' | '.' | '!' | '?' | ';'))
                    .map(|(i, c)| i + c.len_utf8())
            });
        let cut = preferred.unwrap_or(cut);
        parts.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

/// Split `msg` for `dest` into messages within the byte limit, in order.
pub fn split_for(dest: &Destination, msg: Message) -> Vec<Message> {
    let Some(limit) = text_limit(dest, &msg) else {
        return vec![msg];
    };
    match msg {
        Message::Text { content, mentioned } if content.len() > limit => {
            split_utf8(&content, limit)
                .into_iter()
                .map(|c| Message::Text {
                    content: c,
                    mentioned: mentioned.clone(),
                })
                .collect()
        }
        Message::Markdown { content } if content.len() > limit => split_utf8(&content, limit)
            .into_iter()
            .map(|c| Message::Markdown { content: c })
            .collect(),
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_limit_boundaries_and_order() {
        let text: String = (0..3000)
            .map(|i| if i % 97 == 0 { '\n' } else { '股' })
            .collect();
        for limit in [4, 5, 7, 100, 2048, 4096] {
            let parts = split_utf8(&text, limit);
            assert!(
                parts.iter().all(|p| p.len() <= limit && !p.is_empty()),
                "limit {limit}"
            );
            assert_eq!(parts.concat(), text, "limit {limit}");
        }
    }

    #[test]
    fn split_prefers_line_breaks() {
        let text = format!("{}\n{}", "a".repeat(1900), "b".repeat(400));
        let parts = split_utf8(&text, 2048);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].ends_with('\n'));
        assert_eq!(parts[1], "b".repeat(400));
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_utf8("你好", 2048), vec!["你好".to_owned()]);
        assert_eq!(split_utf8("", 2048), vec![String::new()]);
    }

    #[test]
    fn split_for_uses_destination_limits() {
        let long = "字".repeat(1500); // 4500 bytes
        let member = Destination::Member { userid: "u".into() };
        assert_eq!(split_for(&member, Message::text(long.clone())).len(), 3);
        let md = Message::Markdown {
            content: long.clone(),
        };
        assert_eq!(split_for(&Destination::Robot, md).len(), 2);
        let bot = Destination::BotResponse {
            url: "u".into(),
            fallback_userid: "u".into(),
        };
        assert_eq!(split_for(&bot, Message::text(long)).len(), 1);
    }
}
