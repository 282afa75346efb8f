//! Conversations: the worker that drains the inbox, and the routing of each message.
//!
//! The worker takes inbox items in arrival order and hands each to [`Engine::handle`], which
//! decides the replies and commits them — together with removing the item from the inbox —
//! in one transaction. A failure leaves the item in place to be retried (the worker pauses,
//! then starts again from the oldest item, so messages of one member are never reordered);
//! an item that keeps failing is moved to the inbox's dead letters.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::inbox::{Inbox, InboxItem};
use crate::outbox::Outbox;
use crate::shutdown::Shutdown;
use crate::store::{self, AnyTree, Store, TxError};
use crate::wecom::outbound::{Destination, Message};
use crate::wecom::{Channel, ChatType, Content, Event, Inbound};

/// Processing attempts before an inbox item is dead-lettered.
const MAX_FAILURES: u32 = 5;

/// What the bot can do, in the words the agent sees.
pub const HELP_TEXT: &str = "您好，我是事件助手，可以帮您：\n\
1. 解答常见问题：直接描述问题，例如“银证转账失败怎么办”\n\
2. 上报问题：发送“提单”，按提示提供客户号/身份证号/手机号、所属系统、问题描述和截图\n\
3. 查询进度：发送“进度”\n\
4. 补充材料：发送“补充 工单号 内容”\n\
处理过程中可随时发送“取消”结束当前操作，发送“人工”联系处理人员。";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Where replies to `inbound` go: the app chat for app messages, the `response_url` for AI
/// bot messages (falling back to the app when it is spent).
pub fn reply_destination(inbound: &Inbound) -> Destination {
    match (inbound.channel, &inbound.response_url) {
        (Channel::Bot, Some(url)) => Destination::BotResponse {
            url: url.clone(),
            fallback_userid: inbound.sender.clone(),
        },
        _ => Destination::Member {
            userid: inbound.sender.clone(),
        },
    }
}

/// Combine replies for one inbound message. An AI-bot `response_url` takes a single message,
/// so its replies are joined (and in a group they @ the member).
pub fn shape_replies(inbound: &Inbound, replies: Vec<String>) -> Vec<Message> {
    if replies.is_empty() {
        return Vec::new();
    }
    match inbound.channel {
        Channel::Bot => {
            let mut text = replies.join("\n\n");
            if inbound.chat_type == ChatType::Group {
                text = format!("<@{}> {text}", inbound.sender);
            }
            vec![Message::Markdown { content: text }]
        }
        Channel::App => replies.into_iter().map(Message::text).collect(),
    }
}

/// Decides what to do with each inbound message.
#[derive(Clone, Debug)]
pub struct Engine {
    store: Store,
    inbox: Inbox,
    outbox: Outbox,
}

impl Engine {
    pub fn new(store: Store, inbox: Inbox, outbox: Outbox) -> Engine {
        Engine {
            store,
            inbox,
            outbox,
        }
    }

    /// Process one inbox item and commit its effects with its removal from the inbox.
    pub async fn handle(&self, seq: u64, item: &InboxItem) -> Result<(), Error> {
        let inbound = &item.inbound;
        let replies = match &inbound.content {
            Content::Event {
                event: Event::EnterAgent | Event::EnterChat,
            } => vec![HELP_TEXT.to_owned()],
            Content::Event { .. } => Vec::new(),
            c if c.text().is_some() => vec![HELP_TEXT.to_owned()],
            _ => vec!["已收到。发送“帮助”查看我能做什么。".to_owned()],
        };
        let dest = reply_destination(inbound);
        let messages = shape_replies(inbound, replies);
        let origin = format!("inbox/{}", inbound.msg_id);
        let mut trees: Vec<&dyn AnyTree> = vec![self.inbox.tree()];
        trees.extend(self.outbox.trees());
        self.store
            .transaction::<_, Infallible>(&trees, |tx| {
                self.inbox.complete(tx, seq)?;
                for m in &messages {
                    self.outbox.stage(tx, &dest, m.clone(), &origin)?;
                }
                Ok(())
            })
            .map_err(TxError::into_store)?;
        self.outbox.wake();
        Ok(())
    }
}

/// Drains the inbox in order through the [`Engine`].
pub struct Worker {
    inbox: Inbox,
    engine: Arc<Engine>,
}

impl Worker {
    pub fn new(inbox: Inbox, engine: Arc<Engine>) -> Worker {
        Worker { inbox, engine }
    }

    pub async fn run(self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        loop {
            let batch = self.inbox.pending_after(None, 64)?;
            let mut failed = false;
            for (seq, item) in &batch {
                if shutdown.is_triggered() {
                    return Ok(());
                }
                if let Err(e) = self.engine.handle(*seq, item).await {
                    tracing::error!(seq, msg_id = %item.inbound.msg_id, error = %e, "processing failed");
                    if self.inbox.record_failure(*seq, MAX_FAILURES)? {
                        tracing::error!(seq, "inbox item dead-lettered after repeated failures");
                    }
                    failed = true;
                    break;
                }
            }
            if failed {
                tokio::select! {
                    () = shutdown.wait() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            if batch.len() == 64 {
                continue;
            }
            tokio::select! {
                () = shutdown.wait() => return Ok(()),
                () = self.inbox.wait() => {}
                () = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    }
}
