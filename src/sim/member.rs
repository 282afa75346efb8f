//! What a member does in the simulator, turned into callbacks exactly as WeCom sends them:
//! messages, files, events and card clicks are built (app XML or AI-bot JSON), encrypted,
//! signed and POSTed to the gateway, retried like WeCom when no 200 comes back.

use serde_json::Value;

use crate::wecom::{self, Channel, ChatType, Content, Event, Inbound, MediaRef};

use super::{CALLBACK_ATTEMPTS, CallbackOutcome, ChatId, ChatMessage, Sim, Upload, urlencode};

impl Sim {
    /// A member sends text and/or images into `chat`. Builds the callback exactly as WeCom
    /// would and posts it (with retries).
    pub async fn member_send(
        &self,
        chat: &ChatId,
        from: &str,
        text: Option<&str>,
        images: &[Upload],
    ) -> Result<CallbackOutcome, String> {
        if self.settings.member_name(from).is_none() {
            return Err(format!("unknown member {from}"));
        }
        let text = text.map(str::trim).filter(|t| !t.is_empty());
        if text.is_none() && images.is_empty() {
            return Err("empty message".into());
        }
        let media_ids: Vec<String> = images.iter().map(|u| self.store_media(u)).collect();
        let view_urls: Vec<String> = media_ids
            .iter()
            .map(|id| format!("{}/media/view/{id}", self.settings.public_base))
            .collect();
        let now = crate::util::unix_now();
        let (channel, chat_type, chat_id) = match chat {
            ChatId::App(u) => (Channel::App, ChatType::Single, u.clone()),
            ChatId::Bot(u) => (Channel::Bot, ChatType::Single, u.clone()),
            ChatId::Group(g) => (Channel::Bot, ChatType::Group, g.clone()),
            ChatId::Robot => return Err("the handler group robot cannot receive messages".into()),
        };
        if let ChatId::App(u) | ChatId::Bot(u) = chat
            && u != from
        {
            return Err("a member can only write in their own one-to-one chat".into());
        }
        if chat_type == ChatType::Group && !images.is_empty() && text.is_none() {
            return Err("群聊中的图片需与@机器人的文字一起发送（图文混排）".into());
        }

        // One callback per WeCom message: the app cannot carry text and image together, so
        // each image is its own message there.
        let mut contents: Vec<Content> = Vec::new();
        match channel {
            Channel::App => {
                if let Some(t) = text {
                    contents.push(Content::Text { text: t.to_owned() });
                }
                for (id, url) in media_ids.iter().zip(&view_urls) {
                    contents.push(Content::Image {
                        media: MediaRef::MediaId {
                            media_id: id.clone(),
                            pic_url: url.clone(),
                        },
                    });
                }
            }
            Channel::Bot => {
                let urls: Vec<MediaRef> = media_ids
                    .iter()
                    .map(|id| MediaRef::Url {
                        url: format!("{}/media/aibot/{id}", self.settings.public_base),
                        aeskey: None,
                    })
                    .collect();
                match (text, urls.len()) {
                    (Some(t), 0) => contents.push(Content::Text { text: t.to_owned() }),
                    (Some(t), _) => contents.push(Content::Mixed {
                        text: t.to_owned(),
                        images: urls,
                    }),
                    (None, _) => {
                        contents.extend(urls.into_iter().map(|m| Content::Image { media: m }))
                    }
                }
            }
        }

        // Show the member's message in the chat first, as the phone would.
        let kind = match (images.is_empty(), text.is_some()) {
            (true, _) => "text",
            (false, true) => "mixed",
            (false, false) => "image",
        };
        let seq = self.push_message(ChatMessage {
            images: view_urls,
            delivery: "发送中".into(),
            ..ChatMessage::blank(
                chat.to_string(),
                from,
                kind,
                text.unwrap_or_default().to_owned(),
            )
        });

        let mut last = None;
        for content in contents {
            let inbound = Inbound {
                channel,
                chat_type,
                chat_id: chat_id.clone(),
                sender: from.to_owned(),
                msg_id: String::new(),
                create_time: now,
                content,
                quote: None,
                response_url: None,
            };
            let outcome = self.post_inbound(chat, inbound, seq).await?;
            let ok = outcome.ok;
            last = Some(outcome);
            if !ok {
                break;
            }
        }
        let outcome = last.ok_or("nothing to send")?;
        self.set_delivery(seq, &outcome);
        Ok(outcome)
    }

    /// A member sends a file to the AI bot in a one-to-one chat (the only place WeCom
    /// delivers files to the bot).
    pub async fn member_send_file(
        &self,
        chat: &ChatId,
        from: &str,
        file: &Upload,
    ) -> Result<CallbackOutcome, String> {
        let ChatId::Bot(owner) = chat else {
            return Err("files reach the AI bot only in a one-to-one chat".into());
        };
        if owner != from || self.settings.member_name(from).is_none() {
            return Err("a member can only write in their own one-to-one chat".into());
        }
        let id = self.store_media(file);
        let text = format!("[文件 {} 字节]", file.bytes.len());
        let seq = self.push_message(ChatMessage {
            delivery: "发送中".into(),
            ..ChatMessage::blank(chat.to_string(), from, "file", text)
        });
        let inbound = Inbound {
            channel: Channel::Bot,
            chat_type: ChatType::Single,
            chat_id: from.to_owned(),
            sender: from.to_owned(),
            msg_id: String::new(),
            create_time: crate::util::unix_now(),
            content: Content::File {
                media: MediaRef::Url {
                    url: format!("{}/media/aibot/{id}", self.settings.public_base),
                    aeskey: None,
                },
            },
            quote: None,
            response_url: None,
        };
        let outcome = self.post_inbound(chat, inbound, seq).await?;
        self.set_delivery(seq, &outcome);
        Ok(outcome)
    }

    /// A member triggers an event (enter_agent, enter_chat, menu click).
    pub async fn member_event(
        &self,
        chat: &ChatId,
        from: &str,
        event: Event,
    ) -> Result<CallbackOutcome, String> {
        if self.settings.member_name(from).is_none() {
            return Err(format!("unknown member {from}"));
        }
        let (channel, chat_type, chat_id) = match chat {
            ChatId::App(u) => (Channel::App, ChatType::Single, u.clone()),
            ChatId::Bot(u) => (Channel::Bot, ChatType::Single, u.clone()),
            ChatId::Group(g) => (Channel::Bot, ChatType::Group, g.clone()),
            ChatId::Robot => return Err("no events in the handler group".into()),
        };
        let inbound = Inbound {
            channel,
            chat_type,
            chat_id,
            sender: from.to_owned(),
            msg_id: String::new(),
            create_time: crate::util::unix_now(),
            content: Content::Event { event },
            quote: None,
            response_url: None,
        };
        self.post_inbound(chat, inbound, 0).await
    }

    /// A member clicks button `key` on the card message `seq` (and optionally picks options).
    pub async fn click_card(
        &self,
        seq: u64,
        from: &str,
        key: &str,
        selected: Vec<wecom::SelectedItem>,
    ) -> Result<CallbackOutcome, String> {
        let msg = self
            .lock()
            .messages
            .iter()
            .find(|m| m.seq == seq)
            .cloned()
            .ok_or("no such message")?;
        let card = msg.card.clone().ok_or("not a card")?;
        if msg.replaced.is_some() {
            return Err("该卡片已处理".into());
        }
        let chat = ChatId::parse(&msg.chat).ok_or("bad chat")?;
        let event = Event::TemplateCard {
            event_key: key.to_owned(),
            task_id: card
                .get("task_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            card_type: card
                .get("card_type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            response_code: msg.response_code.clone(),
            selected,
        };
        self.member_event(&chat, from, event).await
    }

    /// Encrypt, sign and post one inbound message; retry like WeCom.
    async fn post_inbound(
        &self,
        chat: &ChatId,
        mut inbound: Inbound,
        seq: u64,
    ) -> Result<CallbackOutcome, String> {
        let s = &self.settings;
        let (plaintext, crypt, path, content_type) = match inbound.channel {
            Channel::App => {
                let is_event = matches!(inbound.content, Content::Event { .. });
                inbound.msg_id = if is_event {
                    String::new()
                } else {
                    format!("msg/{}/{}", s.agent_id, self.next_app_msg_no())
                };
                (
                    wecom::app::message_xml(&s.corp_id, s.agent_id, &inbound),
                    &s.app_crypt,
                    "app",
                    "text/xml",
                )
            }
            Channel::Bot => {
                inbound.msg_id = format!("sim{}", crate::util::random_hex(10));
                inbound.response_url = Some(self.new_response_url(chat));
                (
                    wecom::bot::message_json("simaibot", &s.bot_name, &inbound),
                    &s.bot_crypt,
                    "bot",
                    "application/json",
                )
            }
        };
        let encrypt = crypt.encrypt(&plaintext);
        let body = match inbound.channel {
            Channel::App => wecom::app::envelope(&s.corp_id, s.agent_id, &encrypt),
            Channel::Bot => serde_json::json!({ "encrypt": encrypt }).to_string(),
        };
        let timestamp = crate::util::unix_now().to_string();
        let nonce = crate::util::random_digits(10);
        let signature = crypt.sign(&timestamp, &nonce, &encrypt);
        let url = format!(
            "{}/wecom/{path}/callback?msg_signature={signature}&timestamp={timestamp}&nonce={nonce}",
            s.gateway_url
        );
        let mut outcome = CallbackOutcome {
            ok: false,
            attempts: 0,
            status: 0,
            body: String::new(),
            msg_id: inbound.msg_id.clone(),
            seq,
        };
        for attempt in 1..=CALLBACK_ATTEMPTS {
            outcome.attempts = attempt;
            match self.poster.post(&url, content_type, body.clone()).await {
                Ok(answer) => {
                    outcome.status = answer.status;
                    outcome.body = answer.body;
                    if answer.status == 200 {
                        outcome.ok = true;
                        break;
                    }
                }
                Err(e) => {
                    outcome.status = 0;
                    outcome.body = e.to_string();
                }
            }
        }
        if outcome.ok && inbound.channel == Channel::Bot && !outcome.body.is_empty() {
            self.record_passive_reply(chat, &outcome.body);
        }
        Ok(outcome)
    }

    /// The gateway answered an AI-bot callback with an encrypted passive reply: show it.
    fn record_passive_reply(&self, chat: &ChatId, body: &str) {
        let Ok(reply) = serde_json::from_str::<wecom::bot::EncryptedReply>(body) else {
            return;
        };
        let s = &self.settings;
        if s.bot_crypt
            .verify(
                &reply.msgsignature,
                &reply.timestamp,
                &reply.nonce,
                &reply.encrypt,
            )
            .is_err()
        {
            return;
        }
        let Ok(plain) = s.bot_crypt.decrypt(&reply.encrypt) else {
            return;
        };
        let Ok(v) = serde_json::from_str::<Value>(&plain) else {
            return;
        };
        let text = v
            .pointer("/text/content")
            .or_else(|| v.pointer("/markdown/content"))
            .or_else(|| v.pointer("/stream/content"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.push_message(ChatMessage::blank(chat.to_string(), "bot", "text", text));
    }

    fn set_delivery(&self, seq: u64, outcome: &CallbackOutcome) {
        let label = if outcome.ok {
            if outcome.attempts > 1 {
                format!("已送达（第{}次）", outcome.attempts)
            } else {
                "已送达".to_owned()
            }
        } else {
            format!("失败（HTTP {}，{}次）", outcome.status, outcome.attempts)
        };
        {
            let mut st = self.lock();
            if let Some(m) = st.messages.iter_mut().find(|m| m.seq == seq) {
                m.delivery = label;
            }
        }
        self.changed.notify_waiters();
    }

    /// Ask the gateway to verify a callback URL, as the admin console does on save.
    pub async fn verify_url(&self, channel: Channel) -> Result<bool, String> {
        let s = &self.settings;
        let crypt = match channel {
            Channel::App => &s.app_crypt,
            Channel::Bot => &s.bot_crypt,
        };
        let expected = crate::util::random_digits(19);
        let echostr = crypt.encrypt(&expected);
        let timestamp = crate::util::unix_now().to_string();
        let nonce = crate::util::random_digits(10);
        let sig = crypt.sign(&timestamp, &nonce, &echostr);
        let url = format!(
            "{}/wecom/{}/callback?msg_signature={sig}&timestamp={timestamp}&nonce={nonce}&echostr={}",
            s.gateway_url,
            channel.as_str(),
            urlencode(&echostr)
        );
        let answer = self.poster.get(&url).await.map_err(|e| e.to_string())?;
        Ok(answer.status == 200 && answer.body == expected)
    }
}
