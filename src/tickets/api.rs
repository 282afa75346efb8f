//! The ticket service API of the console: one call, one transaction each (the conversation
//! engine uses the `*_in` functions inside its own transaction instead).

use super::{
    Actor, Category, EventKind, Priority, Status, Ticket, TicketError, Tickets, validate_text,
};
use super::{notify, sla};
use crate::store::{Abort, Tx, TxError, abort};
use crate::wecom::outbound::{Destination, Message};

impl Tickets {
    #[tracing::instrument(name = "ticket_op", skip_all, fields(ticket = id))]
    fn run<R>(
        &self,
        id: u64,
        f: impl Fn(&Tx<'_>) -> Result<R, Abort<TicketError>>,
    ) -> Result<R, TicketError> {
        let r = self
            .store
            .transaction(&self.trees(), f)
            .map_err(|e| match e {
                TxError::Abort(e) => e,
                TxError::Store(e) => TicketError::from(e),
            })?;
        self.changed(id);
        Ok(r)
    }

    fn id_of(&self, number: &str) -> Result<u64, TicketError> {
        Ok(self.by_number(number)?.ok_or(TicketError::NotFound)?.id)
    }

    pub fn reply(
        &self,
        number: &str,
        handler: &str,
        text: &str,
    ) -> Result<(Ticket, Vec<u64>), TicketError> {
        let id = self.id_of(number)?;
        let now = crate::util::unix_millis();
        self.run(id, |tx| self.reply_in(tx, id, handler, text, &[], now))
    }

    /// A reply with images and files (stored in the media store already), sent after the
    /// text.
    pub fn reply_with(
        &self,
        number: &str,
        handler: &str,
        text: &str,
        attachments: &[super::Attachment],
    ) -> Result<(Ticket, Vec<u64>), TicketError> {
        let id = self.id_of(number)?;
        let now = crate::util::unix_millis();
        self.run(id, |tx| {
            self.reply_in(tx, id, handler, text, attachments, now)
        })
    }

    /// An internal note (never pushed to the agent; allowed on closed tickets). Each
    /// `@login` in it notifies that colleague in WeCom (if they receive notices).
    pub fn note(&self, number: &str, handler: &str, text: &str) -> Result<Ticket, TicketError> {
        let text = validate_text(text)?;
        let mentioned: Vec<String> = text
            .split('@')
            .skip(1)
            .filter_map(|rest| {
                let login: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                    .collect();
                (!login.is_empty() && login != handler).then_some(login)
            })
            .collect();
        let t = self.handler_edit(
            number,
            handler,
            false,
            EventKind::Note { text: text.clone() },
            |_| {},
        )?;
        if !mentioned.is_empty() {
            let excerpt = crate::ident::mask_truncate(&text, 80);
            self.run(t.id, |tx| {
                for login in &mentioned {
                    self.tell_handler_in::<TicketError>(
                        tx,
                        login,
                        &t,
                        format!(
                            "{handler} 在工单 {} 的内部备注中提到了您：{excerpt}",
                            t.number
                        ),
                    )?;
                }
                Ok(())
            })?;
        }
        Ok(t)
    }

    pub fn change_status(
        &self,
        number: &str,
        handler: &str,
        to: Status,
        reason: &str,
    ) -> Result<Ticket, TicketError> {
        let id = self.id_of(number)?;
        let now = crate::util::unix_millis();
        let actor = Actor::Handler(handler.to_owned());
        self.run(id, |tx| {
            self.change_status_in(tx, id, &actor, to, reason, now)
        })
    }

    /// Assign to `assignee` (a console user) or unassign with `None`.
    pub fn assign(
        &self,
        number: &str,
        handler: &str,
        assignee: Option<&str>,
    ) -> Result<Ticket, TicketError> {
        let to = assignee
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        let event = EventKind::Assigned { to: to.clone() };
        self.handler_edit(number, handler, true, event, |t| t.assignee = to.clone())
    }

    /// Set the category (allowed on closed tickets, so reports can be corrected).
    pub fn set_category(
        &self,
        number: &str,
        handler: &str,
        category: Category,
    ) -> Result<Ticket, TicketError> {
        let event = EventKind::CategorySet { category };
        self.handler_edit(number, handler, false, event, |t| {
            t.category = Some(category)
        })
    }

    pub fn set_priority(
        &self,
        number: &str,
        handler: &str,
        priority: Priority,
    ) -> Result<Ticket, TicketError> {
        let event = EventKind::PrioritySet { priority };
        self.handler_edit(number, handler, true, event, |t| t.priority = priority)
    }

    /// A handler's edit of a ticket that leaves its status alone: apply `edit` and record
    /// `event`, in one transaction. With `open_only`, closed tickets are refused.
    fn handler_edit(
        &self,
        number: &str,
        handler: &str,
        open_only: bool,
        event: EventKind,
        edit: impl Fn(&mut Ticket),
    ) -> Result<Ticket, TicketError> {
        let id = self.id_of(number)?;
        let now = crate::util::unix_millis();
        let actor = Actor::Handler(handler.to_owned());
        self.run(id, |tx| {
            let mut t = self.load_in::<TicketError>(tx, id)?;
            if open_only && t.status == Status::Closed {
                return Err(abort(TicketError::Closed));
            }
            edit(&mut t);
            if let EventKind::Assigned { to: Some(to) } = &event {
                self.human_taken_in(tx, &mut t, to)?;
            }
            t.updated_at = now;
            self.put_in(tx, Some(t.status), &t)?;
            self.event_in(tx, id, now, actor.clone(), event.clone())?;
            Ok(t)
        })
    }

    /// Close ticket `number` as a duplicate of `into`, which carries on: both threads say
    /// so, the duplicate's reporter is told which ticket to follow, and their follow-ups go
    /// there from now on.
    pub fn merge(&self, number: &str, into: &str, handler: &str) -> Result<Ticket, TicketError> {
        let id = self.id_of(number)?;
        let target = self.id_of(into)?;
        if id == target {
            return Err(TicketError::SelfReference);
        }
        let now = crate::util::unix_millis();
        let actor = Actor::Handler(handler.to_owned());
        let r = self.run(id, |tx| {
            let into_t = self.load_in::<TicketError>(tx, target)?;
            if into_t.status == Status::Closed || into_t.merged_into.is_some() {
                return Err(abort(TicketError::MergeTarget(into_t.number)));
            }
            let from = self.load_in::<TicketError>(tx, id)?;
            if from.status == Status::Closed || from.merged_into.is_some() {
                return Err(abort(TicketError::Closed));
            }
            let reason = format!("与工单 {} 是同一问题，已合并，后续由 {} 跟进", into_t.number, into_t.number);
            // Closing needs no category: a duplicate is counted with the ticket it joins.
            let mut t = from.clone();
            let from_status = t.status;
            t.status = Status::Closed;
            t.closed_at = Some(now);
            t.updated_at = now;
            t.merged_into = Some(into_t.number.clone());
            self.put_in(tx, Some(from_status), &t)?;
            self.event_in(
                tx,
                id,
                now,
                actor.clone(),
                EventKind::Status {
                    from: from_status,
                    to: Status::Closed,
                    reason: reason.clone(),
                },
            )?;
            self.event_in(
                tx,
                id,
                now,
                actor.clone(),
                EventKind::MergedInto {
                    into: into_t.number.clone(),
                },
            )?;
            let mut into_t = into_t;
            into_t.updated_at = now;
            self.put_in(tx, Some(into_t.status), &into_t)?;
            self.event_in(
                tx,
                target,
                now,
                actor.clone(),
                EventKind::MergedFrom {
                    from: t.number.clone(),
                },
            )?;
            self.outbox.stage(
                tx,
                &Destination::Member {
                    userid: t.reporter.clone(),
                },
                Message::text(format!(
                    "您的工单 {} 与工单 {} 是同一问题，已合并，后续由 {} 跟进处理；补充信息请直接回复，会转到 {}。",
                    t.number, into_t.number, into_t.number, into_t.number
                )),
                &format!("ticket/{}", t.number),
            )?;
            Ok(t)
        })?;
        self.changed(target);
        Ok(r)
    }

    /// Link (or with `unlink`, unlink) two related tickets, both ways.
    pub fn link_tickets(
        &self,
        number: &str,
        other: &str,
        handler: &str,
        unlink: bool,
    ) -> Result<Ticket, TicketError> {
        let id = self.id_of(number)?;
        let other_id = self.id_of(other)?;
        if id == other_id {
            return Err(TicketError::SelfReference);
        }
        let now = crate::util::unix_millis();
        let actor = Actor::Handler(handler.to_owned());
        let r = self.run(id, |tx| {
            let a = self.load_in::<TicketError>(tx, id)?;
            let b = self.load_in::<TicketError>(tx, other_id)?;
            let pairs = [(id, b.number.clone()), (other_id, a.number.clone())];
            for (tid, peer) in pairs {
                let mut t = self.load_in::<TicketError>(tx, tid)?;
                let has = t.links.contains(&peer);
                if unlink != has {
                    continue;
                }
                if unlink {
                    t.links.retain(|l| *l != peer);
                } else {
                    t.links.push(peer.clone());
                }
                t.updated_at = now;
                self.put_in(tx, Some(t.status), &t)?;
                let kind = if unlink {
                    EventKind::Unlinked { ticket: peer }
                } else {
                    EventKind::Linked { ticket: peer }
                };
                self.event_in(tx, tid, now, actor.clone(), kind)?;
            }
            self.load_in::<TicketError>(tx, id)
        })?;
        self.changed(other_id);
        Ok(r)
    }

    /// Announce, once each, the SLA clocks that ran over; returns how many were announced.
    pub fn announce_overdue(
        &self,
        cfg: &crate::config::SlaConfig,
        now: i64,
    ) -> Result<usize, TicketError> {
        let mut announced = 0;
        for status in [Status::New, Status::InProgress, Status::NeedInfo] {
            for t in self.with_status(status)? {
                let state = sla::state(&t, cfg, now);
                for (kind, clock, label) in [
                    ("first_response", state.first_response, "首次响应"),
                    ("resolution", state.resolution, "解决"),
                ] {
                    if !clock.is_overdue() || t.sla_alerts.iter().any(|k| k == kind) {
                        continue;
                    }
                    let link = self.link(&t.number);
                    let done = self.run(t.id, |tx| {
                        let mut cur = self.load_in::<TicketError>(tx, t.id)?;
                        if cur.sla_alerts.iter().any(|k| k == kind) {
                            return Ok(false);
                        }
                        cur.sla_alerts.push(kind.to_owned());
                        self.put_in(tx, Some(cur.status), &cur)?;
                        self.outbox.stage(
                            tx,
                            &Destination::Robot,
                            Message::Markdown {
                                content: notify::robot_overdue(&cur, label, &clock.label(), &link),
                            },
                            &format!("ticket/{}", cur.number),
                        )?;
                        self.tell_assignee_in::<TicketError>(
                            tx,
                            &cur,
                            format!(
                                "您负责的工单 {} {label}即将或已经超时：{}。",
                                cur.number,
                                clock.label()
                            ),
                        )?;
                        Ok(true)
                    })?;
                    if done {
                        announced += 1;
                    }
                }
            }
        }
        Ok(announced)
    }
}
