//! 智能机器人 (AI bot) callbacks: the JSON envelope `{"encrypt": …}` and the decrypted message
//! JSON (WeCom's 智能机器人 callback format). Every callback carries `msgid`, the dedupe identity.
//!
//! Group text arrives with the "@BotName " prefix; it is stripped here so that commands read
//! the same in groups and one-to-one chats.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Channel, ChatType, Content, Event, Inbound, MediaRef, ParseError, SelectedItem, strip_mentions,
};

#[derive(Debug, Deserialize)]
struct Envelope {
    encrypt: String,
}

/// The `encrypt` field of a POST body.
pub fn parse_envelope(body: &str) -> Result<String, ParseError> {
    let env: Envelope = serde_json::from_str(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if env.encrypt.is_empty() {
        return Err(ParseError::Missing("encrypt"));
    }
    Ok(env.encrypt)
}

/// The encrypted passive reply body: `{"encrypt","msgsignature","timestamp","nonce"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EncryptedReply {
    pub encrypt: String,
    pub msgsignature: String,
    pub timestamp: String,
    pub nonce: String,
}

#[derive(Debug, Deserialize, Default)]
struct From {
    #[serde(default)]
    userid: String,
}

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    msgid: String,
    #[serde(default)]
    chatid: String,
    #[serde(default)]
    chattype: String,
    #[serde(default)]
    from: From,
    #[serde(default)]
    create_time: i64,
    #[serde(default)]
    response_url: String,
    #[serde(default)]
    msgtype: String,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

/// Parse a decrypted AI-bot callback into an [`Inbound`].
pub fn parse(plaintext: &str) -> Result<Inbound, ParseError> {
    let m: Message =
        serde_json::from_str(plaintext).map_err(|e| ParseError::Json(e.to_string()))?;
    if m.msgid.is_empty() {
        return Err(ParseError::Missing("msgid"));
    }
    if m.msgtype.is_empty() {
        return Err(ParseError::Missing("msgtype"));
    }
    let sender = m.from.userid.trim().to_owned();
    if sender.is_empty() {
        return Err(ParseError::Missing("from.userid"));
    }
    let chat_type = match m.chattype.as_str() {
        "group" => ChatType::Group,
        "single" | "" => ChatType::Single,
        _ => return Err(ParseError::BadValue("chattype")),
    };
    let chat_id = match chat_type {
        ChatType::Group if m.chatid.is_empty() => return Err(ParseError::Missing("chatid")),
        ChatType::Group => m.chatid.clone(),
        ChatType::Single => sender.clone(),
    };
    let content = content_of(&m.msgtype, &m.rest)?;
    let quote = m
        .rest
        .get("quote")
        .and_then(|q| {
            let t = q.get("msgtype")?.as_str()?;
            content_of(t, q.as_object()?).ok()
        })
        .and_then(|c| c.text().map(str::to_owned));
    Ok(Inbound {
        channel: Channel::Bot,
        chat_type,
        chat_id,
        sender,
        msg_id: m.msgid,
        create_time: m.create_time,
        content,
        quote,
        response_url: Some(m.response_url).filter(|u| !u.is_empty()),
    })
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn media_of(obj: Option<&Value>, field: &'static str) -> Result<MediaRef, ParseError> {
    let obj = obj.ok_or(ParseError::Missing(field))?;
    let url = str_at(obj, &["url"])
        .filter(|u| !u.is_empty())
        .ok_or(ParseError::Missing(field))?;
    Ok(MediaRef::Url {
        url: url.to_owned(),
        aeskey: str_at(obj, &["aeskey"]).map(str::to_owned),
    })
}

fn content_of(msgtype: &str, m: &serde_json::Map<String, Value>) -> Result<Content, ParseError> {
    Ok(match msgtype {
        "text" => Content::Text {
            text: strip_mentions(
                m.get("text")
                    .and_then(|t| str_at(t, &["content"]))
                    .ok_or(ParseError::Missing("text.content"))?,
            ),
        },
        "image" => Content::Image {
            media: media_of(m.get("image"), "image.url")?,
        },
        "mixed" => {
            let items = m
                .get("mixed")
                .and_then(|x| x.get("msg_item"))
                .and_then(Value::as_array)
                .ok_or(ParseError::Missing("mixed.msg_item"))?;
            let mut texts = Vec::new();
            let mut images = Vec::new();
            for item in items {
                match item.get("msgtype").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = str_at(item, &["text", "content"]) {
                            texts.push(t.to_owned());
                        }
                    }
                    Some("image") => images.push(media_of(item.get("image"), "image.url")?),
                    _ => {}
                }
            }
            Content::Mixed {
                text: strip_mentions(&texts.join("\n")),
                images,
            }
        }
        "voice" => Content::Voice {
            media_id: None,
            transcript: Some(
                m.get("voice")
                    .and_then(|v| str_at(v, &["content"]))
                    .ok_or(ParseError::Missing("voice.content"))?
                    .to_owned(),
            ),
        },
        "file" => Content::File {
            media: media_of(m.get("file"), "file.url")?,
        },
        "event" => {
            let ev = m.get("event").ok_or(ParseError::Missing("event"))?;
            let kind = str_at(ev, &["eventtype"]).ok_or(ParseError::Missing("event.eventtype"))?;
            let event = match kind {
                "enter_chat" => Event::EnterChat,
                "template_card_event" => {
                    let body = ev
                        .get("template_card_event")
                        .ok_or(ParseError::Missing("event.template_card_event"))?;
                    Event::TemplateCard {
                        event_key: str_at(body, &["event_key"]).unwrap_or_default().to_owned(),
                        task_id: str_at(body, &["task_id"]).unwrap_or_default().to_owned(),
                        card_type: str_at(body, &["card_type"]).unwrap_or_default().to_owned(),
                        response_code: String::new(),
                        selected: selected_items(body),
                    }
                }
                "feedback_event" => {
                    let body = ev
                        .get("feedback_event")
                        .ok_or(ParseError::Missing("event.feedback_event"))?;
                    Event::Feedback {
                        id: str_at(body, &["id"]).unwrap_or_default().to_owned(),
                        kind: body.get("type").and_then(Value::as_i64).unwrap_or(0),
                        content: str_at(body, &["content"]).unwrap_or_default().to_owned(),
                    }
                }
                other => return Err(ParseError::Unsupported(format!("event/{other}"))),
            };
            Content::Event { event }
        }
        other => return Err(ParseError::Unsupported(other.to_owned())),
    })
}

fn selected_items(body: &Value) -> Vec<SelectedItem> {
    let items = body
        .get("selected_items")
        .and_then(|s| s.get("selected_item"))
        .and_then(Value::as_array);
    items
        .map(|items| {
            items
                .iter()
                .map(|it| SelectedItem {
                    question_key: str_at(it, &["question_key"]).unwrap_or_default().to_owned(),
                    option_ids: it
                        .get("option_ids")
                        .and_then(|o| o.get("option_id"))
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Build the plaintext JSON of an AI-bot callback, as WeCom would send it (simulator, tests).
/// `bot_name` is put in front of group text, as WeCom does for @-mentions.
pub fn message_json(aibotid: &str, bot_name: &str, m: &Inbound) -> String {
    let mut v = serde_json::json!({
        "msgid": m.msg_id,
        "aibotid": aibotid,
        "chattype": match m.chat_type { ChatType::Group => "group", ChatType::Single => "single" },
        "from": { "userid": m.sender },
        "create_time": m.create_time,
    });
    if m.chat_type == ChatType::Group {
        v["chatid"] = Value::from(m.chat_id.clone());
    }
    if let Some(u) = &m.response_url {
        v["response_url"] = Value::from(u.clone());
    }
    let mention = |t: &str| {
        if m.chat_type == ChatType::Group {
            format!("@{bot_name} {t}")
        } else {
            t.to_owned()
        }
    };
    let media_json = |r: &MediaRef| match r {
        MediaRef::Url { url, aeskey } => match aeskey {
            Some(k) => serde_json::json!({ "url": url, "aeskey": k }),
            None => serde_json::json!({ "url": url }),
        },
        MediaRef::MediaId { pic_url, .. } => serde_json::json!({ "url": pic_url }),
    };
    match &m.content {
        Content::Text { text } => {
            v["msgtype"] = "text".into();
            v["text"] = serde_json::json!({ "content": mention(text) });
        }
        Content::Image { media } => {
            v["msgtype"] = "image".into();
            v["image"] = media_json(media);
        }
        Content::Mixed { text, images } => {
            v["msgtype"] = "mixed".into();
            let mut items =
                vec![serde_json::json!({"msgtype": "text", "text": {"content": mention(text)}})];
            items.extend(
                images
                    .iter()
                    .map(|i| serde_json::json!({"msgtype": "image", "image": media_json(i)})),
            );
            v["mixed"] = serde_json::json!({ "msg_item": items });
        }
        Content::Voice { transcript, .. } => {
            v["msgtype"] = "voice".into();
            v["voice"] = serde_json::json!({ "content": transcript.clone().unwrap_or_default() });
        }
        Content::File { media } => {
            v["msgtype"] = "file".into();
            v["file"] = media_json(media);
        }
        Content::Event { event } => {
            v["msgtype"] = "event".into();
            v["event"] = match event {
                Event::EnterChat => serde_json::json!({ "eventtype": "enter_chat" }),
                Event::TemplateCard {
                    event_key,
                    task_id,
                    card_type,
                    selected,
                    ..
                } => serde_json::json!({
                    "eventtype": "template_card_event",
                    "template_card_event": {
                        "card_type": card_type,
                        "event_key": event_key,
                        "task_id": task_id,
                        "selected_items": { "selected_item": selected.iter().map(|s| serde_json::json!({
                            "question_key": s.question_key,
                            "option_ids": { "option_id": s.option_ids },
                        })).collect::<Vec<_>>() },
                    }
                }),
                Event::Feedback { id, kind, content } => serde_json::json!({
                    "eventtype": "feedback_event",
                    "feedback_event": { "id": id, "type": kind, "content": content }
                }),
                Event::EnterAgent | Event::Click { .. } => {
                    serde_json::json!({ "eventtype": "unsupported" })
                }
            };
        }
        Content::Video { .. } | Content::Location { .. } | Content::Link { .. } => {
            v["msgtype"] = "unsupported".into();
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_text_from_the_vector_file() {
        let plain = r#"{"msgid":"CAIQ16HMjQYYtestmsgid","aibotid":"AIBOTID","chatid":"CHATID","chattype":"group","from":{"userid":"zhangsan"},"response_url":"https://example.invalid/response","msgtype":"text","text":{"content":"@RobotA 工单 CUST-1001 无法登录"}}"#;
        let m = parse(plain).expect("parses");
        assert_eq!(m.channel, Channel::Bot);
        assert_eq!(m.chat_type, ChatType::Group);
        assert_eq!(m.chat_id, "CHATID");
        assert_eq!(m.sender, "zhangsan");
        assert_eq!(m.msg_id, "CAIQ16HMjQYYtestmsgid");
        assert_eq!(m.dedupe_key(), "bot/CAIQ16HMjQYYtestmsgid");
        assert_eq!(
            m.response_url.as_deref(),
            Some("https://example.invalid/response")
        );
        assert_eq!(
            m.content,
            Content::Text {
                text: "工单 CUST-1001 无法登录".into()
            }
        );
    }

    #[test]
    fn every_message_type() {
        let single = |body: &str| {
            parse(&format!(
                r#"{{"msgid":"m1","aibotid":"B","chattype":"single","from":{{"userid":"lisi"}},"response_url":"http://r/1",{body}}}"#
            ))
        };
        let img = single(r#""msgtype":"image","image":{"url":"http://img/1"}"#).expect("image");
        assert_eq!(img.chat_id, "lisi");
        assert_eq!(
            img.content,
            Content::Image {
                media: MediaRef::Url {
                    url: "http://img/1".into(),
                    aeskey: None
                }
            }
        );
        let mixed = single(
            r#""msgtype":"mixed","mixed":{"msg_item":[{"msgtype":"text","text":{"content":"@助手 截图如下"}},{"msgtype":"image","image":{"url":"http://img/2","aeskey":"k"}}]}"#,
        )
        .expect("mixed");
        assert_eq!(
            mixed.content,
            Content::Mixed {
                text: "截图如下".into(),
                images: vec![MediaRef::Url {
                    url: "http://img/2".into(),
                    aeskey: Some("k".into())
                }]
            }
        );
        let voice =
            single(r#""msgtype":"voice","voice":{"content":"我的账户登录不了"}"#).expect("voice");
        assert_eq!(voice.content.text(), Some("我的账户登录不了"));
        let file = single(r#""msgtype":"file","file":{"url":"http://f/1"}"#).expect("file");
        assert!(matches!(file.content, Content::File { .. }));
        let quote = single(
            r#""msgtype":"text","text":{"content":"这个怎么办"},"quote":{"msgtype":"text","text":{"content":"原来的问题"}}"#,
        )
        .expect("quote");
        assert_eq!(quote.quote.as_deref(), Some("原来的问题"));
        assert_eq!(quote.content.text(), Some("这个怎么办"));
    }

    #[test]
    fn events() {
        let ev = |body: &str| {
            parse(&format!(
                r#"{{"msgid":"e1","aibotid":"B","chattype":"single","from":{{"userid":"lisi"}},"msgtype":"event","event":{body}}}"#
            ))
        };
        assert_eq!(
            ev(r#"{"eventtype":"enter_chat"}"#).expect("enter").content,
            Content::Event {
                event: Event::EnterChat
            }
        );
        let card = ev(r#"{"eventtype":"template_card_event","template_card_event":{"card_type":"button_interaction","event_key":"solved","task_id":"t-1"}}"#).expect("card");
        assert!(matches!(
            card.content,
            Content::Event { event: Event::TemplateCard { ref event_key, .. } } if event_key == "solved"
        ));
        let fb = ev(r#"{"eventtype":"feedback_event","feedback_event":{"id":"fb1","type":2,"content":"不准确"}}"#).expect("feedback");
        assert_eq!(
            fb.content,
            Content::Event {
                event: Event::Feedback {
                    id: "fb1".into(),
                    kind: 2,
                    content: "不准确".into()
                }
            }
        );
        assert!(matches!(
            ev(r#"{"eventtype":"disconnected_event"}"#),
            Err(ParseError::Unsupported(_))
        ));
    }

    #[test]
    fn malformed_payloads() {
        assert!(matches!(parse("not json"), Err(ParseError::Json(_))));
        assert!(matches!(
            parse(r#"{"msgtype":"text","from":{"userid":"a"},"text":{"content":"x"}}"#),
            Err(ParseError::Missing("msgid"))
        ));
        assert!(matches!(
            parse(
                r#"{"msgid":"1","chattype":"group","from":{"userid":"a"},"msgtype":"text","text":{"content":"x"}}"#
            ),
            Err(ParseError::Missing("chatid"))
        ));
        assert!(matches!(
            parse(r#"{"msgid":"1","from":{"userid":"a"},"msgtype":"stream","stream":{"id":"s"}}"#),
            Err(ParseError::Unsupported(_))
        ));
        assert!(matches!(parse_envelope("{}"), Err(ParseError::Json(_))));
        assert!(matches!(
            parse_envelope(r#"{"encrypt":""}"#),
            Err(ParseError::Missing("encrypt"))
        ));
    }

    #[test]
    fn simulator_json_round_trips() {
        let m = Inbound {
            channel: Channel::Bot,
            chat_type: ChatType::Group,
            chat_id: "wrgroup".into(),
            sender: "wangwu".into(),
            msg_id: "abc".into(),
            create_time: 5,
            content: Content::Mixed {
                text: "截图".into(),
                images: vec![MediaRef::Url {
                    url: "http://x/1".into(),
                    aeskey: None,
                }],
            },
            quote: None,
            response_url: Some("http://r".into()),
        };
        assert_eq!(
            parse(&message_json("B", "事件助手", &m)).expect("round trip"),
            m
        );
    }
}
