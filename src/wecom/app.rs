//! Self-built app callbacks: the XML envelope and the decrypted message XML (WeCom's
//! 接收消息 callback format).
//!
//! Messages are identified by `MsgId`; events have none, so their identity is a composite of
//! sender, time and every field that tells two same-second events apart (Event, EventKey,
//! TaskId, ResponseCode) — the fix WxJava needed after dropping distinct events.

use super::xml::{XmlFields, XmlWriter};
use super::{Channel, ChatType, Content, Event, Inbound, MediaRef, ParseError, SelectedItem};

/// The outer `<xml><ToUserName/><AgentID/><Encrypt/></xml>` of a POST callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub to_user_name: String,
    pub agent_id: String,
    pub encrypt: String,
}

pub fn parse_envelope(body: &str) -> Result<Envelope, ParseError> {
    let f = XmlFields::parse(body)?;
    let encrypt = f.text("Encrypt");
    if encrypt.is_empty() {
        return Err(ParseError::Missing("Encrypt"));
    }
    Ok(Envelope {
        to_user_name: f.text("ToUserName"),
        agent_id: f.text("AgentID"),
        encrypt,
    })
}

/// Build the envelope WeCom posts (used by the simulator and tests).
pub fn envelope(corp_id: &str, agent_id: i64, encrypt: &str) -> String {
    XmlWriter::new()
        .text("ToUserName", corp_id)
        .text("AgentID", &agent_id.to_string())
        .text("Encrypt", encrypt)
        .finish()
}

/// Parse a decrypted app message into an [`Inbound`].
pub fn parse(plaintext: &str) -> Result<Inbound, ParseError> {
    let f = XmlFields::parse(plaintext)?;
    let sender = nonempty(&f, "FromUserName")?;
    let create_time = match f.get("CreateTime") {
        Some(t) => t
            .trim()
            .parse::<i64>()
            .map_err(|_| ParseError::BadValue("CreateTime"))?,
        None => 0,
    };
    let msg_type = nonempty(&f, "MsgType")?;
    let agent = f.text("AgentID");

    let (content, msg_id) = if msg_type == "event" {
        let event_name = nonempty(&f, "Event")?;
        let event = match event_name.as_str() {
            "enter_agent" => Event::EnterAgent,
            "click" => Event::Click {
                key: f.text("EventKey"),
            },
            "template_card_event" => Event::TemplateCard {
                event_key: f.text("EventKey"),
                task_id: f.text("TaskId"),
                card_type: f.text("CardType"),
                response_code: f.text("ResponseCode"),
                selected: selected_items(&f),
            },
            other => return Err(ParseError::Unsupported(format!("event/{other}"))),
        };
        let id = format!(
            "evt/{agent}/{sender}/{create_time}/{event_name}/{}/{}/{}",
            f.text("EventKey"),
            f.text("TaskId"),
            f.text("ResponseCode")
        );
        (Content::Event { event }, id)
    } else {
        let msg_id = nonempty(&f, "MsgId")?;
        if !msg_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadValue("MsgId"));
        }
        let content = match msg_type.as_str() {
            "text" => Content::Text {
                text: f.text("Content"),
            },
            "image" => Content::Image {
                media: MediaRef::MediaId {
                    media_id: nonempty(&f, "MediaId")?,
                    pic_url: f.text("PicUrl"),
                },
            },
            "voice" => Content::Voice {
                media_id: Some(nonempty(&f, "MediaId")?),
                transcript: f.get("Recognition").map(str::to_owned),
            },
            "video" => Content::Video {
                media_id: nonempty(&f, "MediaId")?,
            },
            "location" => Content::Location {
                latitude: number(&f, "Location_X")?,
                longitude: number(&f, "Location_Y")?,
                label: f.text("Label"),
            },
            "link" => Content::Link {
                title: f.text("Title"),
                description: f.text("Description"),
                url: f.text("Url"),
            },
            "file" => Content::File {
                media: MediaRef::MediaId {
                    media_id: nonempty(&f, "MediaId")?,
                    pic_url: String::new(),
                },
            },
            other => return Err(ParseError::Unsupported(other.to_owned())),
        };
        (content, format!("msg/{agent}/{msg_id}"))
    };

    Ok(Inbound {
        channel: Channel::App,
        chat_type: ChatType::Single,
        chat_id: sender.clone(),
        sender,
        msg_id,
        create_time,
        content,
        quote: None,
        response_url: None,
    })
}

fn nonempty(f: &XmlFields, name: &'static str) -> Result<String, ParseError> {
    match f.get(name).map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(ParseError::Missing(name)),
    }
}

fn number(f: &XmlFields, name: &'static str) -> Result<f64, ParseError> {
    f.get(name)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .ok_or(ParseError::BadValue(name))
}

fn selected_items(f: &XmlFields) -> Vec<SelectedItem> {
    // The XML repeats <SelectedItem> blocks; walk the leaves in order and start a new
    // item at each QuestionKey.
    let mut items: Vec<SelectedItem> = Vec::new();
    for (path, value) in f.fields() {
        match path.as_ref() {
            "SelectedItems/SelectedItem/QuestionKey" => items.push(SelectedItem {
                question_key: value.to_string(),
                option_ids: Vec::new(),
            }),
            "SelectedItems/SelectedItem/OptionIds/OptionId" => {
                if let Some(last) = items.last_mut() {
                    last.option_ids.push(value.to_string());
                }
            }
            _ => {}
        }
    }
    items
}

/// Build the plaintext XML of an app message, as WeCom would send it (simulator, tests).
pub fn message_xml(corp_id: &str, agent_id: i64, inbound: &Inbound) -> String {
    let w = XmlWriter::new()
        .text("ToUserName", corp_id)
        .text("FromUserName", &inbound.sender)
        .number("CreateTime", inbound.create_time);
    let msg_no = inbound
        .msg_id
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let w = match &inbound.content {
        Content::Text { text } => w
            .text("MsgType", "text")
            .text("Content", text)
            .number("MsgId", &msg_no),
        Content::Image {
            media: MediaRef::MediaId { media_id, pic_url },
        } => w
            .text("MsgType", "image")
            .text("PicUrl", pic_url)
            .text("MediaId", media_id)
            .number("MsgId", &msg_no),
        Content::Voice { media_id, .. } => w
            .text("MsgType", "voice")
            .text("MediaId", media_id.as_deref().unwrap_or_default())
            .text("Format", "amr")
            .number("MsgId", &msg_no),
        Content::Video { media_id } => w
            .text("MsgType", "video")
            .text("MediaId", media_id)
            .text("ThumbMediaId", "thumb")
            .number("MsgId", &msg_no),
        Content::Location {
            latitude,
            longitude,
            label,
        } => w
            .text("MsgType", "location")
            .number("Location_X", latitude)
            .number("Location_Y", longitude)
            .number("Scale", 15)
            .text("Label", label)
            .number("MsgId", &msg_no),
        Content::Link {
            title,
            description,
            url,
        } => w
            .text("MsgType", "link")
            .text("Title", title)
            .text("Description", description)
            .text("Url", url)
            .text("PicUrl", "")
            .number("MsgId", &msg_no),
        Content::Event { event } => {
            let w = w.text("MsgType", "event");
            match event {
                Event::EnterAgent => w.text("Event", "enter_agent").text("EventKey", ""),
                Event::Click { key } => w.text("Event", "click").text("EventKey", key),
                Event::TemplateCard {
                    event_key,
                    task_id,
                    card_type,
                    response_code,
                    selected,
                } => {
                    let mut w = w
                        .text("Event", "template_card_event")
                        .text("EventKey", event_key)
                        .text("TaskId", task_id)
                        .text("CardType", card_type)
                        .text("ResponseCode", response_code);
                    if !selected.is_empty() {
                        w = w.open("SelectedItems");
                        for item in selected {
                            w = w
                                .open("SelectedItem")
                                .text("QuestionKey", &item.question_key)
                                .open("OptionIds");
                            for o in &item.option_ids {
                                w = w.text("OptionId", o);
                            }
                            w = w.close("OptionIds").close("SelectedItem");
                        }
                        w = w.close("SelectedItems");
                    }
                    w
                }
                Event::EnterChat | Event::Feedback { .. } => w.text("Event", "unknown"),
            }
        }
        // The app callback has no mixed messages and file is unconfirmed; the simulator
        // never produces them on this surface.
        Content::Mixed { .. } | Content::File { .. } | Content::Image { .. } => {
            w.text("MsgType", "unsupported")
        }
    };
    w.number("AgentID", agent_id).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(inner: &str) -> String {
        format!(
            "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName>\
             <CreateTime>1700000000</CreateTime>{inner}<AgentID>1000002</AgentID></xml>"
        )
    }

    #[test]
    fn text_message() {
        let m = parse(&wrap(
            "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[股票交易不了]]></Content><MsgId>4561255354251345929</MsgId>",
        ))
        .expect("parses");
        assert_eq!(m.channel, Channel::App);
        assert_eq!(m.chat_type, ChatType::Single);
        assert_eq!(m.sender, "zhangsan");
        assert_eq!(m.chat_id, "zhangsan");
        assert_eq!(m.msg_id, "msg/1000002/4561255354251345929");
        assert_eq!(m.create_time, 1_700_000_000);
        assert_eq!(
            m.content,
            Content::Text {
                text: "股票交易不了".into()
            }
        );
    }

    #[test]
    fn every_message_type() {
        let image = parse(&wrap("<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://p/x.png]]></PicUrl><MediaId><![CDATA[MID1]]></MediaId><MsgId>1</MsgId>")).expect("image");
        assert_eq!(
            image.content,
            Content::Image {
                media: MediaRef::MediaId {
                    media_id: "MID1".into(),
                    pic_url: "http://p/x.png".into()
                }
            }
        );
        let voice = parse(&wrap("<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[V1]]></MediaId><Format><![CDATA[amr]]></Format><MsgId>2</MsgId>")).expect("voice");
        assert_eq!(
            voice.content,
            Content::Voice {
                media_id: Some("V1".into()),
                transcript: None
            }
        );
        let video = parse(&wrap("<MsgType><![CDATA[video]]></MsgType><MediaId><![CDATA[VD]]></MediaId><ThumbMediaId><![CDATA[T]]></ThumbMediaId><MsgId>3</MsgId>")).expect("video");
        assert_eq!(
            video.content,
            Content::Video {
                media_id: "VD".into()
            }
        );
        let loc = parse(&wrap("<MsgType><![CDATA[location]]></MsgType><Location_X>31.2304</Location_X><Location_Y>121.4737</Location_Y><Scale>15</Scale><Label><![CDATA[上海市黄浦区]]></Label><MsgId>4</MsgId><AppType><![CDATA[wxwork]]></AppType>")).expect("location");
        assert_eq!(
            loc.content,
            Content::Location {
                latitude: 31.2304,
                longitude: 121.4737,
                label: "上海市黄浦区".into()
            }
        );
        let link = parse(&wrap("<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[公告]]></Title><Description><![CDATA[说明]]></Description><Url><![CDATA[https://e.x/a]]></Url><PicUrl><![CDATA[]]></PicUrl><MsgId>5</MsgId>")).expect("link");
        assert_eq!(
            link.content,
            Content::Link {
                title: "公告".into(),
                description: "说明".into(),
                url: "https://e.x/a".into()
            }
        );
    }

    #[test]
    fn events_and_their_composite_identity() {
        let enter = parse(&wrap(
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[enter_agent]]></Event><EventKey><![CDATA[]]></EventKey>",
        ))
        .expect("enter_agent");
        assert_eq!(
            enter.content,
            Content::Event {
                event: Event::EnterAgent
            }
        );
        let click = parse(&wrap(
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[click]]></Event><EventKey><![CDATA[menu_progress]]></EventKey>",
        ))
        .expect("click");
        assert_eq!(
            click.content,
            Content::Event {
                event: Event::Click {
                    key: "menu_progress".into()
                }
            }
        );
        let card = parse(&wrap(
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event>\
             <EventKey><![CDATA[rate_yes]]></EventKey><TaskId><![CDATA[task1]]></TaskId>\
             <CardType><![CDATA[button_interaction]]></CardType><ResponseCode><![CDATA[RC1]]></ResponseCode>\
             <SelectedItems><SelectedItem><QuestionKey><![CDATA[score]]></QuestionKey>\
             <OptionIds><OptionId><![CDATA[5]]></OptionId></OptionIds></SelectedItem></SelectedItems>",
        ))
        .expect("card");
        let Content::Event {
            event:
                Event::TemplateCard {
                    event_key,
                    task_id,
                    response_code,
                    selected,
                    ..
                },
        } = &card.content
        else {
            panic!("not a card event: {card:?}");
        };
        assert_eq!(event_key, "rate_yes");
        assert_eq!(task_id, "task1");
        assert_eq!(response_code, "RC1");
        assert_eq!(
            selected,
            &[SelectedItem {
                question_key: "score".into(),
                option_ids: vec!["5".into()]
            }]
        );
        // Two different events in the same second have different identities.
        assert_ne!(enter.msg_id, click.msg_id);
        assert_ne!(click.msg_id, card.msg_id);
    }

    #[test]
    fn unknown_types_are_unsupported_not_errors() {
        let e = parse(&wrap(
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event>",
        ))
        .expect_err("unsupported");
        assert!(matches!(e, ParseError::Unsupported(_)));
        let e = parse(&wrap(
            "<MsgType><![CDATA[hologram]]></MsgType><MsgId>9</MsgId>",
        ))
        .expect_err("unsupported");
        assert!(matches!(e, ParseError::Unsupported(_)));
    }

    #[test]
    fn missing_fields_are_errors() {
        assert!(matches!(
            parse("<xml><MsgType>text</MsgType><MsgId>1</MsgId></xml>"),
            Err(ParseError::Missing("FromUserName"))
        ));
        assert!(matches!(
            parse(&wrap("<MsgType>text</MsgType><Content>x</Content>")),
            Err(ParseError::Missing("MsgId"))
        ));
        assert!(matches!(
            parse(&wrap("<MsgType>text</MsgType><MsgId>12ab</MsgId>")),
            Err(ParseError::BadValue("MsgId"))
        ));
    }

    #[test]
    fn simulator_xml_round_trips() {
        let m = Inbound {
            channel: Channel::App,
            chat_type: ChatType::Single,
            chat_id: "lisi".into(),
            sender: "lisi".into(),
            msg_id: "msg/1000002/77".into(),
            create_time: 1_700_000_001,
            content: Content::Text {
                text: "银行卡余额和账户对不上 ]]> <x>".into(),
            },
            quote: None,
            response_url: None,
        };
        let xml = message_xml("ww1", 1000002, &m);
        assert_eq!(parse(&xml).expect("round trip"), m);
    }
}
