//! The WeCom protocol: crypto, inbound parsing, outbound message types and the API client.
//!
//! Both callback surfaces normalise into one [`Inbound`] type, so nothing above this module
//! knows whether a message arrived as the app's XML or the AI bot's JSON:
//!
//! | surface | parser | receive_id | chat |
//! |---|---|---|---|
//! | self-built app | [`app::parse`] | CorpID | always single (apps are not in groups) |
//! | 智能机器人 (AI bot) | [`bot::parse`] | `""` | single or group (@-mentions only) |
//!
//! Depends on `util` only; `client` is the one place of the gateway that uses reqwest.

pub mod app;
pub mod bot;
pub mod client;
pub mod crypto;
pub mod outbound;
pub mod xml;

use serde::{Deserialize, Serialize};

pub use crypto::{CryptoError, MsgCrypt};

/// Which callback surface a message arrived on; replies go back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Self-built application (XML callback, replies with `message/send`).
    App,
    /// 智能机器人 (JSON callback, replies through `response_url`).
    Bot,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::App => "app",
            Channel::Bot => "bot",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatType {
    Single,
    Group,
}

/// One inbound message or event, verified, decrypted and normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    pub channel: Channel,
    pub chat_type: ChatType,
    /// The group's chatid, or the sender's userid for a one-to-one chat.
    pub chat_id: String,
    /// The member's userid.
    pub sender: String,
    /// Identity for deduplication: MsgId, AI-bot msgid, or a composite event key.
    pub msg_id: String,
    /// Unix seconds, as WeCom stamped it (0 when absent).
    pub create_time: i64,
    pub content: Content,
    /// Text of a quoted message (AI bot `quote`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// AI bot only: single-use URL for one proactive reply, valid one hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_url: Option<String>,
}

impl Inbound {
    /// The key under which retried deliveries of this message are recognised.
    pub fn dedupe_key(&self) -> String {
        format!("{}/{}", self.channel.as_str(), self.msg_id)
    }

    /// Key of the chat this message came from (`app/zhangsan`, `bot/wrGroup01`). A dialog
    /// belongs to one (chat, member) pair.
    pub fn chat_key(&self) -> String {
        format!("{}/{}", self.channel.as_str(), self.chat_id)
    }
}

/// Where the bytes of an image or file are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MediaRef {
    /// App callback: fetch with `media/get` (valid 3 days); `pic_url` as a fallback.
    MediaId { media_id: String, pic_url: String },
    /// AI bot: a 5-minute URL whose content is AES-encrypted.
    Url {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        aeskey: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text {
        text: String,
    },
    Image {
        media: MediaRef,
    },
    /// Text and images sent together (AI bot; the only way to get an image from a group).
    Mixed {
        text: String,
        images: Vec<MediaRef>,
    },
    Voice {
        /// App: the media to fetch; AI bot: absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_id: Option<String>,
        /// AI bot: WeCom's transcription.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transcript: Option<String>,
    },
    Video {
        media_id: String,
    },
    File {
        media: MediaRef,
    },
    Location {
        latitude: f64,
        longitude: f64,
        label: String,
    },
    Link {
        title: String,
        description: String,
        url: String,
    },
    Event {
        event: Event,
    },
}

impl Content {
    /// The text a person typed (or said), if this content carries any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Content::Text { text } | Content::Mixed { text, .. } => Some(text),
            Content::Voice {
                transcript: Some(t),
                ..
            } => Some(t),
            _ => None,
        }
    }

    /// Images carried by this content.
    pub fn images(&self) -> Vec<&MediaRef> {
        match self {
            Content::Image { media } => vec![media],
            Content::Mixed { images, .. } => images.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// A short English label for logs and metrics (never the content itself).
    pub fn kind(&self) -> &'static str {
        match self {
            Content::Text { .. } => "text",
            Content::Image { .. } => "image",
            Content::Mixed { .. } => "mixed",
            Content::Voice { .. } => "voice",
            Content::Video { .. } => "video",
            Content::File { .. } => "file",
            Content::Location { .. } => "location",
            Content::Link { .. } => "link",
            Content::Event { .. } => "event",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectedItem {
    pub question_key: String,
    pub option_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// App: the member opened the app.
    EnterAgent,
    /// AI bot: the member opened the one-to-one chat (first time that day).
    EnterChat,
    /// App menu "click" button.
    Click { key: String },
    /// A button or selection on an interactive template card.
    TemplateCard {
        event_key: String,
        task_id: String,
        card_type: String,
        /// Token for updating the card (app: `ResponseCode`), single use.
        #[serde(default)]
        response_code: String,
        #[serde(default)]
        selected: Vec<SelectedItem>,
    },
    /// AI bot: like / dislike on a reply.
    Feedback {
        id: String,
        /// 1 accurate, 2 inaccurate, 3 cancelled (WeCom's numbering).
        kind: i64,
        #[serde(default)]
        content: String,
    },
}

/// Why an inbound payload could not be turned into an [`Inbound`].
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Xml(#[from] xml::XmlError),
    #[error("JSON is malformed: {0}")]
    Json(String),
    #[error("required field `{0}` is missing or empty")]
    Missing(&'static str),
    #[error("field `{0}` has an invalid value")]
    BadValue(&'static str),
    /// A well-formed message of a type we do not handle: acknowledged and ignored.
    #[error("unsupported message type `{0}`")]
    Unsupported(String),
}

/// Strip leading @-mentions ("@事件助手 ", "@RobotA\u{2005}") from group text.
pub fn strip_mentions(text: &str) -> String {
    let mut rest = text.trim_start();
    while let Some(after_at) = rest.strip_prefix('@') {
        let end = after_at
            .find(|c: char| c.is_whitespace() || c == '\u{2005}')
            .unwrap_or(after_at.len());
        rest = after_at[end..].trim_start_matches(|c: char| c.is_whitespace() || c == '\u{2005}');
    }
    rest.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_stripped_from_the_start_only() {
        assert_eq!(strip_mentions("@RobotA 工单 CUST-1001"), "工单 CUST-1001");
        assert_eq!(strip_mentions("@事件助手\u{2005}提单"), "提单");
        assert_eq!(strip_mentions("@a @b  hello @c"), "hello @c");
        assert_eq!(strip_mentions("@事件助手"), "");
        assert_eq!(strip_mentions("no mention"), "no mention");
    }
}
