//! Tickets: the model, numbering, the thread of events, the state machine, and the service
//! API the console and the conversation engine use.
//!
//! Trees (declared here only):
//! - `tickets`: `u64 id` → [`Ticket`]
//! - `ticket_numbers`: `String number` → `u64 id`
//! - `ticket_events`: `(u64 id, u64 seq)` → [`TicketEvent`] — the thread, in order
//! - `tickets_by_reporter`: `(String userid, u64 id)` → `()`
//! - `tickets_by_status`: `(String status key, u64 id)` → `()`
//! - `counters`: `String` (`ticket/20261121`) → `u64` — the daily ticket counter
//! - `members`: `String userid` → [`MemberInfo`] — names from `user/get`, cached
//!
//! Every change is one transaction that writes the ticket, its indexes, an event and the
//! outbox notices it causes. The `*_in` functions run inside a caller's transaction (the
//! conversation engine adds the inbox item and the session); the plain ones are the service
//! API of the console (`api.rs`), one call and one transaction each. The records are in
//! `model.rs`.

mod api;
pub mod calendar;
mod model;
pub mod notify;
pub mod query;
pub mod sla;
pub mod state;

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::outbox::Outbox;
use crate::store::trees;
use crate::store::{self, Abort, AnyTree, Store, Tree, Tx, abort};
use crate::wecom::outbound::{Destination, Message};

pub use model::{
    Actor, Attachment, EventKind, MemberInfo, NewTicket, Rating, Ticket, TicketError, TicketEvent,
    member_label,
};
pub use state::{Category, Priority, Status};

/// Configuration the ticket service needs.
#[derive(Debug, Clone)]
pub struct TicketSettings {
    pub prefix: String,
    pub utc_offset: chrono::FixedOffset,
    /// Base URL of the console, for links in robot notices.
    pub public_url: String,
    /// The working calendar, for business-time durations.
    pub calendar: crate::config::BusinessHours,
}

/// The longest reply or note accepted.
pub const MAX_TEXT: usize = 4000;

#[derive(Clone)]
pub struct Tickets {
    store: Store,
    tickets: Tree<u64, Ticket>,
    numbers: Tree<String, u64>,
    events: Tree<(u64, u64), TicketEvent>,
    by_reporter: Tree<(String, u64), ()>,
    by_customer: Tree<(String, u64), ()>,
    by_status: Tree<(String, u64), ()>,
    counters: Tree<String, u64>,
    members: Tree<String, MemberInfo>,
    contacts: Tree<String, String>,
    outbox: Outbox,
    settings: Arc<TicketSettings>,
    changes: broadcast::Sender<u64>,
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tickets").finish_non_exhaustive()
    }
}

fn validate_text(text: &str) -> Result<String, TicketError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(TicketError::Empty);
    }
    if t.chars().count() > MAX_TEXT {
        return Err(TicketError::TooLong(MAX_TEXT));
    }
    Ok(t.to_owned())
}

impl Tickets {
    pub fn open(store: &Store, outbox: Outbox, settings: TicketSettings) -> store::Result<Tickets> {
        let t = Tickets::open_trees(store, outbox, settings)?;
        // Databases from before the customer index: build it once.
        if t.by_customer.is_empty() && !t.tickets.is_empty() {
            for item in t.tickets.iter() {
                let (id, ticket) = item?;
                t.by_customer
                    .insert(&(ticket.customer_id.value.clone(), id), &())?;
            }
        }
        Ok(t)
    }

    fn open_trees(
        store: &Store,
        outbox: Outbox,
        settings: TicketSettings,
    ) -> store::Result<Tickets> {
        Ok(Tickets {
            store: store.clone(),
            tickets: store.tree(&trees::TICKETS)?,
            numbers: store.tree(&trees::TICKET_NUMBERS)?,
            events: store.tree(&trees::TICKET_EVENTS)?,
            by_reporter: store.tree(&trees::TICKETS_BY_REPORTER)?,
            by_customer: store.tree(&trees::TICKETS_BY_CUSTOMER)?,
            by_status: store.tree(&trees::TICKETS_BY_STATUS)?,
            counters: store.tree(&trees::COUNTERS)?,
            members: store.tree(&trees::MEMBERS)?,
            contacts: store.tree(&trees::HANDLER_CONTACTS)?,
            outbox,
            settings: Arc::new(settings),
            changes: broadcast::channel(256).0,
        })
    }

    /// The trees a transaction needs for any ticket operation (outbox included).
    pub fn trees(&self) -> Vec<&dyn AnyTree> {
        let mut v: Vec<&dyn AnyTree> = vec![
            &self.tickets,
            &self.numbers,
            &self.events,
            &self.by_reporter,
            &self.by_customer,
            &self.by_status,
            &self.counters,
            &self.contacts,
        ];
        v.extend(self.outbox.trees());
        v
    }

    pub fn settings(&self) -> &TicketSettings {
        &self.settings
    }

    /// Ids of tickets changed from now on (for live views). Lagging receivers just reload.
    pub fn subscribe(&self) -> broadcast::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Announce a committed change (call after the transaction).
    pub fn changed(&self, id: u64) {
        let _ = self.changes.send(id);
        self.outbox.wake();
    }

    pub fn link(&self, number: &str) -> String {
        format!("{}/console/tickets/{number}", self.settings.public_url)
    }

    // --- reads ----------------------------------------------------------------------------

    pub fn get(&self, id: u64) -> store::Result<Option<Ticket>> {
        self.tickets.get(&id)
    }

    pub fn by_number(&self, number: &str) -> store::Result<Option<Ticket>> {
        match self.numbers.get(&number.trim().to_uppercase())? {
            Some(id) => self.tickets.get(&id),
            None => Ok(None),
        }
    }

    /// All tickets, newest first.
    pub fn list(&self) -> store::Result<Vec<Ticket>> {
        self.tickets
            .iter()
            .rev()
            .map(|r| r.map(|(_, t)| t))
            .collect()
    }

    /// The newest tickets, newest first, while `keep` holds (ids grow with time).
    pub fn newest_while(&self, keep: impl Fn(&Ticket) -> bool) -> store::Result<Vec<Ticket>> {
        let mut out = Vec::new();
        for item in self.tickets.iter().rev() {
            let (_, t) = item?;
            if !keep(&t) {
                break;
            }
            out.push(t);
        }
        Ok(out)
    }

    /// Tickets with status `s`, newest first.
    pub fn with_status(&self, s: Status) -> store::Result<Vec<Ticket>> {
        self.indexed(&self.by_status, s.key())
    }

    /// Tickets in any of `statuses`, newest first (read through the status index, so the
    /// queue never loads closed history it does not show).
    pub fn in_statuses(&self, statuses: &[Status]) -> store::Result<Vec<Ticket>> {
        let mut out = Vec::new();
        for s in statuses {
            out.extend(self.with_status(*s)?);
        }
        out.sort_unstable_by_key(|t| std::cmp::Reverse(t.id));
        Ok(out)
    }

    /// How many tickets are in each status (keys of the status index only).
    pub fn status_counts(&self) -> store::Result<Vec<(Status, usize)>> {
        Status::ALL
            .iter()
            .map(|s| {
                let n = self
                    .by_status
                    .scan_part(&s.key().to_owned())
                    .try_fold(0, |n, e| e.map(|_| n + 1))?;
                Ok((*s, n))
            })
            .collect()
    }

    /// The tickets of a customer identifier (whole), newest first.
    pub fn of_customer(&self, value: &str) -> store::Result<Vec<Ticket>> {
        self.indexed(&self.by_customer, value)
    }

    /// A member's tickets, newest first.
    pub fn of_reporter(&self, userid: &str) -> store::Result<Vec<Ticket>> {
        self.indexed(&self.by_reporter, userid)
    }

    /// The tickets an index lists under `part`, newest first.
    fn indexed(&self, index: &Tree<(String, u64), ()>, part: &str) -> store::Result<Vec<Ticket>> {
        let mut out = Vec::new();
        for entry in index.scan_part(&part.to_owned()).rev() {
            let ((_, id), ()) = entry?;
            if let Some(t) = self.tickets.get(&id)? {
                out.push(t);
            }
        }
        Ok(out)
    }

    pub fn events(&self, id: u64) -> store::Result<Vec<TicketEvent>> {
        self.events
            .scan_part(&id)
            .map(|r| r.map(|(_, e)| e))
            .collect()
    }

    /// The id of ticket `number` inside a transaction.
    pub fn id_in<E>(&self, tx: &Tx<'_>, number: &str) -> Result<Option<u64>, Abort<E>> {
        Ok(tx.get(&self.numbers, &number.trim().to_uppercase())?)
    }

    /// Read a ticket inside a transaction.
    pub fn get_in<E>(&self, tx: &Tx<'_>, id: u64) -> Result<Option<Ticket>, Abort<E>> {
        Ok(tx.get(&self.tickets, &id)?)
    }

    /// A member's cached name: `Some` while fresh (a day; a failed lookup, which gives the
    /// userid, for five minutes), `None` when a lookup is due.
    pub fn cached_name(&self, userid: &str) -> store::Result<Option<String>> {
        let now = crate::util::unix_millis();
        Ok(self.members.get(&userid.to_owned())?.and_then(|m| {
            let ttl = if m.failed { 5 * 60_000 } else { 24 * 3_600_000 };
            (now - m.fetched_at < ttl).then_some(m.name)
        }))
    }

    /// Look a member's name up with `user/get` and cache it (or the failure, briefly).
    pub async fn fetch_name(
        &self,
        client: &crate::wecom::client::Client,
        userid: &str,
        deadline: std::time::Duration,
    ) -> store::Result<String> {
        let looked_up = tokio::time::timeout(deadline, client.user_get(userid)).await;
        let (name, failed) = match looked_up {
            Ok(Ok(m)) if !m.name.is_empty() => (m.name, false),
            Ok(Ok(_)) => (userid.to_owned(), false),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "user/get failed; the userid stands in for the name");
                (userid.to_owned(), true)
            }
            Err(_) => {
                tracing::warn!("user/get timed out; the userid stands in for the name");
                (userid.to_owned(), true)
            }
        };
        let info = MemberInfo {
            name,
            fetched_at: crate::util::unix_millis(),
            failed,
        };
        self.members.insert(&userid.to_owned(), &info)?;
        Ok(info.name)
    }

    /// Stage a notice about `t` to the handler group: `notice(ticket, console link)`.
    fn notify_handlers_in<E>(
        &self,
        tx: &Tx<'_>,
        t: &Ticket,
        notice: fn(&Ticket, &str) -> String,
    ) -> Result<(), Abort<E>> {
        let content = notice(t, &self.link(&t.number));
        let origin = format!("ticket/{}", t.number);
        self.outbox.stage(
            tx,
            &Destination::Robot,
            Message::Markdown { content },
            &origin,
        )?;
        Ok(())
    }

    fn business_ms(&self, from: i64, to: i64) -> i64 {
        calendar::business_ms(&self.settings.calendar, self.settings.utc_offset, from, to)
    }

    /// The first handler response: when, and how long after filing (calendar and
    /// business time, measured now so a later calendar change keeps history).
    fn first_response(&self, t: &mut Ticket, now: i64) {
        t.first_response_at = Some(now);
        t.first_response_ms = Some(now - t.created_at);
        t.first_response_business_ms = Some(self.business_ms(t.created_at, now));
    }

    /// Map console account `login` to its WeCom userid for notices (`None`: no notices).
    pub fn set_handler_contact(&self, login: &str, userid: Option<&str>) -> store::Result<()> {
        match userid {
            Some(u) => self.contacts.insert(&login.to_owned(), &u.to_owned()),
            None => self.contacts.remove(&login.to_owned()).map(drop),
        }
    }

    /// Tell handler `login` (if they receive notices) `text` about `t`, in WeCom.
    fn tell_handler_in<E>(
        &self,
        tx: &Tx<'_>,
        login: &str,
        t: &Ticket,
        text: String,
    ) -> Result<(), Abort<E>> {
        let Some(userid) = tx.get(&self.contacts, &login.to_owned())? else {
            return Ok(());
        };
        let link = self.link(&t.number);
        self.outbox.stage(
            tx,
            &Destination::Member { userid },
            Message::text(format!("{text}\n{link}")),
            &format!("ticket/{}", t.number),
        )?;
        Ok(())
    }

    /// Tell the ticket's assignee (if any, and if they receive notices).
    fn tell_assignee_in<E>(&self, tx: &Tx<'_>, t: &Ticket, text: String) -> Result<(), Abort<E>> {
        match &t.assignee {
            Some(a) => self.tell_handler_in(tx, a, t, text),
            None => Ok(()),
        }
    }

    // --- writes inside a caller's transaction ----------------------------------------------

    fn put_in<E>(&self, tx: &Tx<'_>, old: Option<Status>, t: &Ticket) -> Result<(), Abort<E>> {
        if let Some(old) = old
            && old != t.status
        {
            tx.remove(&self.by_status, &(old.key().to_owned(), t.id))?;
        }
        tx.insert(&self.by_status, &(t.status.key().to_owned(), t.id), &())?;
        tx.insert(&self.tickets, &t.id, t)?;
        Ok(())
    }

    fn event_in<E>(
        &self,
        tx: &Tx<'_>,
        id: u64,
        at: i64,
        actor: Actor,
        kind: EventKind,
    ) -> Result<u64, Abort<E>> {
        let seq = tx.generate_id()?;
        tx.insert(
            &self.events,
            &(id, seq),
            &TicketEvent {
                seq,
                at,
                actor,
                kind,
            },
        )?;
        Ok(seq)
    }

    fn load_in<E: From<TicketError>>(&self, tx: &Tx<'_>, id: u64) -> Result<Ticket, Abort<E>> {
        tx.get(&self.tickets, &id)?
            .ok_or_else(|| abort(E::from(TicketError::NotFound)))
    }

    fn to_member(t: &Ticket) -> Destination {
        Destination::Member {
            userid: t.reporter.clone(),
        }
    }

    /// File a new ticket: number, indexes, `Created` event and the handler group's notice.
    /// The agent's confirmation ([`notify::filed`]) is part of the caller's reply, because an
    /// AI-bot reply URL takes a single message.
    pub fn create_in<E>(&self, tx: &Tx<'_>, new: &NewTicket, now: i64) -> Result<Ticket, Abort<E>> {
        let day = chrono::DateTime::from_timestamp_millis(now)
            .unwrap_or_default()
            .with_timezone(&self.settings.utc_offset)
            .format("%Y%m%d")
            .to_string();
        let counter_key = format!("ticket/{day}");
        let n = tx.get(&self.counters, &counter_key)?.unwrap_or(0) + 1;
        tx.insert(&self.counters, &counter_key, &n)?;
        let number = format!("{}{day}-{n:04}", self.settings.prefix);
        let id = tx.generate_id()?;
        let t = Ticket::filed(id, number.clone(), new.clone(), now);
        tx.insert(&self.numbers, &number, &id)?;
        tx.insert(&self.by_reporter, &(t.reporter.clone(), id), &())?;
        tx.insert(&self.by_customer, &(t.customer_id.value.clone(), id), &())?;
        self.put_in(tx, None, &t)?;
        self.event_in(
            tx,
            id,
            now,
            Actor::Reporter(t.reporter.clone()),
            EventKind::Created,
        )?;
        self.notify_handlers_in(tx, &t, notify::robot_new)?;
        Ok(t)
    }

    /// Change the status (validated), with its event, the agent's notice, and for 已解决 the
    /// rating request (text, plus a card as an extra).
    pub fn change_status_in<E: From<TicketError>>(
        &self,
        tx: &Tx<'_>,
        id: u64,
        actor: &Actor,
        to: Status,
        reason: &str,
        now: i64,
    ) -> Result<Ticket, Abort<E>> {
        // The agent's own actions (rating, supplements) are not echoed back as notices.
        let notify = !matches!(actor, Actor::Reporter(_));
        self.transition_in(tx, id, actor, to, reason, now, notify)
    }

    #[allow(clippy::too_many_arguments)]
    fn transition_in<E: From<TicketError>>(
        &self,
        tx: &Tx<'_>,
        id: u64,
        actor: &Actor,
        to: Status,
        reason: &str,
        now: i64,
        notify_agent: bool,
    ) -> Result<Ticket, Abort<E>> {
        let mut t = self.load_in::<E>(tx, id)?;
        let from = t.status;
        if from == Status::Closed {
            return Err(abort(E::from(TicketError::Closed)));
        }
        if !from.can_become(to) {
            return Err(abort(E::from(TicketError::IllegalTransition { from, to })));
        }
        if to == Status::Resolved && t.category.is_none() {
            return Err(abort(E::from(TicketError::CategoryRequired)));
        }
        // The SLA clock pauses while waiting for the agent.
        if from == Status::NeedInfo
            && let Some(since) = t.paused_since.take()
        {
            t.paused_ms += (now - since).max(0);
        }
        if to == Status::NeedInfo {
            t.paused_since = Some(now);
        }
        t.status = to;
        t.updated_at = now;
        if from == Status::Resolved && to != Status::Closed {
            // A reopen: leaving 已解决 for more work.
            t.reopens += 1;
        }
        match to {
            Status::Resolved => {
                t.resolved_at = Some(now);
                t.rating = None;
                t.resolution_ms = Some(now - t.created_at);
                t.resolution_business_ms = Some(self.business_ms(t.created_at, now));
            }
            Status::Closed => t.closed_at = Some(now),
            Status::InProgress if from == Status::Resolved => t.resolved_at = None,
            _ => {}
        }
        if matches!(actor, Actor::Handler(_)) && t.first_response_at.is_none() {
            self.first_response(&mut t, now);
        }
        if notify_agent && matches!(actor, Actor::Handler(_)) {
            t.handler_contact_at = Some(now);
        }
        self.put_in(tx, Some(from), &t)?;
        let seq = self.event_in(
            tx,
            id,
            now,
            actor.clone(),
            EventKind::Status {
                from,
                to,
                reason: reason.trim().to_owned(),
            },
        )?;
        let origin = format!("ticket/{}", t.number);
        let dest = Self::to_member(&t);
        if notify_agent {
            self.outbox.stage(
                tx,
                &dest,
                Message::text(notify::status_changed(&t, from, to, reason)),
                &origin,
            )?;
            if to == Status::Resolved {
                let task_id = format!("rate-{}-{seq}", t.id);
                self.outbox.stage(
                    tx,
                    &dest,
                    Message::TemplateCard {
                        card: notify::rating_card(&t, &task_id),
                    },
                    &origin,
                )?;
            }
        }
        Ok(t)
    }

    /// A handler's reply: event, push to the agent. A reply to a 待处理 ticket starts it.
    #[allow(clippy::too_many_arguments)]
    pub fn reply_in<E: From<TicketError>>(
        &self,
        tx: &Tx<'_>,
        id: u64,
        handler: &str,
        text: &str,
        attachments: &[Attachment],
        now: i64,
    ) -> Result<(Ticket, Vec<u64>), Abort<E>> {
        let text = validate_text(text).map_err(|e| abort(E::from(e)))?;
        let mut t = self.load_in::<E>(tx, id)?;
        if t.status == Status::Closed {
            return Err(abort(E::from(TicketError::Closed)));
        }
        let actor = Actor::Handler(handler.to_owned());
        if t.status == Status::New {
            // The reply itself tells the agent work has started: no separate notice.
            t = self.transition_in::<E>(tx, id, &actor, Status::InProgress, "", now, false)?;
        }
        t.updated_at = now;
        if t.first_response_at.is_none() {
            self.first_response(&mut t, now);
        }
        t.handler_contact_at = Some(now);
        t.human_requested_at = None;
        self.put_in(tx, Some(t.status), &t)?;
        let origin = format!("ticket/{}", t.number);
        let mut jobs = self.outbox.stage(
            tx,
            &Self::to_member(&t),
            Message::text(notify::handler_reply(&t, &text)),
            &origin,
        )?;
        for a in attachments {
            let msg = if a.image {
                Message::Image {
                    media: a.media.clone(),
                }
            } else {
                Message::File {
                    media: a.media.clone(),
                    name: a.name.clone(),
                }
            };
            jobs.extend(self.outbox.stage(tx, &Self::to_member(&t), msg, &origin)?);
        }
        self.event_in(
            tx,
            id,
            now,
            actor,
            EventKind::Reply {
                text,
                jobs: jobs.clone(),
                attachments: attachments.to_vec(),
            },
        )?;
        Ok((t, jobs))
    }

    /// What the agent adds to their ticket (text and/or screenshots). A ticket waiting for
    /// information goes back to 处理中 and the handlers are told.
    pub fn supplement_in<E: From<TicketError>>(
        &self,
        tx: &Tx<'_>,
        id: u64,
        userid: &str,
        text: &str,
        images: &[String],
        now: i64,
    ) -> Result<Ticket, Abort<E>> {
        let mut t = self.load_in::<E>(tx, id)?;
        if t.reporter != userid {
            return Err(abort(E::from(TicketError::NotOwner)));
        }
        // A merged ticket's follow-ups go to the ticket that carries on.
        if let Some(into) = t.merged_into.clone()
            && let Some(target) = tx.get(&self.numbers, &into)?
        {
            t = self.load_in::<E>(tx, target)?;
        }
        let id = t.id;
        if t.status == Status::Closed {
            return Err(abort(E::from(TicketError::Closed)));
        }
        if text.trim().is_empty() && images.is_empty() {
            return Err(abort(E::from(TicketError::Empty)));
        }
        let actor = Actor::Reporter(userid.to_owned());
        self.event_in(
            tx,
            id,
            now,
            actor.clone(),
            EventKind::AgentMessage {
                text: text.trim().to_owned(),
                images: images.to_vec(),
            },
        )?;
        let was_waiting = t.status == Status::NeedInfo;
        // The first words after a handler's are worth a notice; the rest show in the queue.
        let answers_handler = t.awaits_agent();
        if was_waiting {
            t = self.change_status_in::<E>(
                tx,
                id,
                &actor,
                Status::InProgress,
                "报告人已补充信息",
                now,
            )?;
        }
        for h in images {
            if !t.screenshots.contains(h) {
                t.screenshots.push(h.clone());
            }
        }
        t.updated_at = now;
        t.agent_follow_up_at = Some(now);
        self.put_in(tx, Some(t.status), &t)?;
        if was_waiting || answers_handler {
            self.notify_handlers_in(tx, &t, notify::robot_supplemented)?;
        }
        self.tell_assignee_in(
            tx,
            &t,
            format!("您负责的工单 {} 收到报告人的补充信息。", t.number),
        )?;
        Ok(t)
    }

    /// The agent asks for a person about ticket `id`: flagged until a handler takes it (the
    /// queue shows it), noted in the thread, and the handler group told.
    pub fn request_human_in<E: From<TicketError>>(
        &self,
        tx: &Tx<'_>,
        id: u64,
        userid: &str,
        now: i64,
    ) -> Result<Ticket, Abort<E>> {
        let mut t = self.load_in::<E>(tx, id)?;
        if t.reporter != userid {
            return Err(abort(E::from(TicketError::NotOwner)));
        }
        t.human_requested_at.get_or_insert(now);
        t.updated_at = now;
        self.put_in(tx, Some(t.status), &t)?;
        self.event_in(
            tx,
            id,
            now,
            Actor::Reporter(userid.to_owned()),
            EventKind::HumanRequested,
        )?;
        Ok(t)
    }

    /// A handler took a ticket whose agent asked for a person: the agent hears who.
    fn human_taken_in<E>(
        &self,
        tx: &Tx<'_>,
        t: &mut Ticket,
        handler: &str,
    ) -> Result<(), Abort<E>> {
        if t.human_requested_at.take().is_none() {
            return Ok(());
        }
        let text = format!(
            "处理人员 {handler} 已接手您的工单 {}，会尽快联系您。",
            t.number
        );
        self.outbox.stage(
            tx,
            &Self::to_member(t),
            Message::text(text),
            &format!("ticket/{}", t.number),
        )?;
        Ok(())
    }

    /// Link ticket `t` to incident `incident` (`Some`) or unlink it (`None`), with the
    /// event in its thread. The incidents service calls this inside its own transaction,
    /// with the ticket it read there; nothing is sent from here.
    pub fn set_incident_in<E>(
        &self,
        tx: &Tx<'_>,
        mut t: Ticket,
        incident: Option<&str>,
        actor: &Actor,
        now: i64,
    ) -> Result<Ticket, Abort<E>> {
        let kind = match (incident, t.incident.take()) {
            (Some(to), _) => EventKind::IncidentLinked {
                incident: to.to_owned(),
            },
            (None, Some(was)) => EventKind::IncidentUnlinked { incident: was },
            (None, None) => return Ok(t),
        };
        t.incident = incident.map(str::to_owned);
        t.updated_at = now;
        self.put_in(tx, Some(t.status), &t)?;
        self.event_in(tx, t.id, now, actor.clone(), kind)?;
        Ok(t)
    }

    /// Resolve ticket `id` because its incident resolved: with the incident's note, the
    /// agent's notice and the rating card, as a handler's resolution would. A ticket that is
    /// no longer open (or cannot become 已解决) is left as it is (`None`); one without a
    /// category gets 程序类, the category of a system fault.
    pub fn resolve_for_incident_in<E: From<TicketError>>(
        &self,
        tx: &Tx<'_>,
        id: u64,
        note: &str,
        now: i64,
    ) -> Result<Option<Ticket>, Abort<E>> {
        let Some(mut t) = tx.get(&self.tickets, &id)? else {
            return Ok(None);
        };
        if !t.status.is_open() || !t.status.can_become(Status::Resolved) {
            return Ok(None);
        }
        if t.category.is_none() {
            t.category = Some(Category::Program);
            self.put_in(tx, Some(t.status), &t)?;
            self.event_in(
                tx,
                id,
                now,
                Actor::System,
                EventKind::CategorySet {
                    category: Category::Program,
                },
            )?;
        }
        let t = self.change_status_in::<E>(tx, id, &Actor::System, Status::Resolved, note, now)?;
        Ok(Some(t))
    }

    /// The agent's rating after 已解决: solved closes the ticket; unsolved reopens it and
    /// tells the handlers.
    pub fn rate_in<E: From<TicketError>>(
        &self,
        tx: &Tx<'_>,
        id: u64,
        userid: &str,
        solved: bool,
        score: Option<u8>,
        now: i64,
    ) -> Result<Ticket, Abort<E>> {
        let mut t = self.load_in::<E>(tx, id)?;
        if t.reporter != userid {
            return Err(abort(E::from(TicketError::NotOwner)));
        }
        let (to, reason) = if solved {
            (Status::Closed, "报告人确认已解决")
        } else {
            (Status::InProgress, "报告人反馈未解决")
        };
        if t.status != Status::Resolved {
            return Err(abort(E::from(TicketError::IllegalTransition {
                from: t.status,
                to,
            })));
        }
        let actor = Actor::Reporter(userid.to_owned());
        // Stored before the transition, which keeps it (only 已解决 clears a rating).
        t.rating = Some(Rating {
            solved,
            score,
            at: now,
        });
        t.updated_at = now;
        self.put_in(tx, Some(t.status), &t)?;
        self.event_in(
            tx,
            id,
            now,
            actor.clone(),
            EventKind::Rated { solved, score },
        )?;
        let t = self.change_status_in::<E>(tx, id, &actor, to, reason, now)?;
        if !solved {
            self.notify_handlers_in(tx, &t, notify::robot_reopened)?;
        }
        let verdict = if solved {
            "已解决"
        } else {
            "未解决（已重新打开）"
        };
        let stars = score
            .map(|s| format!("，满意度 {s} 分"))
            .unwrap_or_default();
        self.tell_assignee_in(
            tx,
            &t,
            format!("您负责的工单 {} 收到评价：{verdict}{stars}。", t.number),
        )?;
        Ok(t)
    }
}
