//! Incidents: one record for a fault that many alerts and many reports stand for, with its
//! timeline, its alerts, its linked tickets, and the notices it sends (the handler group
//! when it opens, becomes 重大 and resolves; every linked reporter for each update and the
//! resolution).
//!
//! Trees (declared in `store::trees`, opened here only):
//! - `incidents`: `u64 id` → [`Incident`]; `incident_numbers`: number → id;
//!   `incidents_open`: ids not resolved; `incident_counters`: the daily number counter
//! - `incident_events`: `(id, seq)` → [`IncidentEvent`], the timeline
//! - `alerts`: alert id (`alertmanager/1a30ba71cca2921f`) → [`Alert`], its last state;
//!   `incident_alerts`: `(incident id, alert id)`; `alert_groups`: group id → the group's
//!   latest incident
//!
//! Every change is one transaction with the tickets it links and the outbox notices it
//! causes, so a notice is staged exactly once: a restart neither loses nor repeats one, and
//! a sender's retry or repeat finds the alert already there and changes only its "last
//! seen". Monitors' posts are read by [`alert`]; the HTTP edge checks who sent them.

pub mod alert;
mod cluster;
mod model;
pub mod notify;
pub mod outbreak;

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::config::IncidentsConfig;
use crate::outbox::Outbox;
use crate::store::trees;
use crate::store::{self, Abort, AnyTree, Store, Tree, Tx, TxError, abort};
use crate::tickets::{Actor, Priority, Ticket, Tickets};
use crate::wecom::outbound::{Destination, Message};

pub use alert::{Action, AlertBatch, AlertIn, HookError};
pub use cluster::{Report, Reported};
pub use model::{
    Alert, AlertStatus, Cluster, ClusterMember, EventKind, Incident, IncidentError, IncidentEvent,
    IncidentStatus, Link, Major, Severity, Source,
};

/// The longest update or note accepted.
pub const MAX_TEXT: usize = 4000;

/// What one post of a monitor did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// The incidents the batch's alerts belong to, in order, each once.
    pub incidents: Vec<String>,
    pub opened: usize,
    /// New alerts (or new firing episodes) attached.
    pub fired: usize,
    /// Alerts already firing, seen again (only their "last seen" changed).
    pub repeats: usize,
    pub resolved: usize,
    /// Resolves or acknowledgements of alerts never seen firing: recorded, nothing else.
    pub unknown: usize,
}

/// A handler's request to declare an incident (`POST /api/v1/incidents`).
#[derive(Debug, Clone)]
pub struct Declare {
    pub title: String,
    pub system: String,
    pub priority: Priority,
    pub tickets: Vec<String>,
}

/// Links and numbering the service needs from the rest of the configuration.
#[derive(Debug, Clone)]
pub struct IncidentSettings {
    pub rules: IncidentsConfig,
    pub utc_offset: chrono::FixedOffset,
    /// Base URL of the console, for links in notices.
    pub public_url: String,
}

#[derive(Clone)]
pub struct Incidents {
    store: Store,
    incidents: Tree<u64, Incident>,
    numbers: Tree<String, u64>,
    events: Tree<(u64, u64), IncidentEvent>,
    open: Tree<u64, ()>,
    counters: Tree<String, u64>,
    alerts: Tree<String, Alert>,
    incident_alerts: Tree<(u64, String), ()>,
    groups: Tree<String, u64>,
    by_system: Tree<String, Vec<u64>>,
    clusters: Tree<u64, Cluster>,
    clusters_by_system: Tree<String, Vec<u64>>,
    bins: Tree<(String, u64), u64>,
    cutoffs: Tree<String, f32>,
    tickets: Tickets,
    outbox: Outbox,
    settings: Arc<IncidentSettings>,
    changes: broadcast::Sender<u64>,
}

impl std::fmt::Debug for Incidents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incidents").finish_non_exhaustive()
    }
}

fn validate_text(text: &str) -> Result<String, IncidentError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(IncidentError::Empty);
    }
    if t.chars().count() > MAX_TEXT {
        return Err(IncidentError::TooLong(MAX_TEXT));
    }
    Ok(t.to_owned())
}

/// An alert's id: its source and its identity there.
fn alert_id(source: Source, key: &str) -> String {
    format!("{}/{key}", source.key())
}

impl Incidents {
    pub fn open(
        store: &Store,
        tickets: Tickets,
        outbox: Outbox,
        settings: IncidentSettings,
    ) -> store::Result<Incidents> {
        Ok(Incidents {
            store: store.clone(),
            incidents: store.tree(&trees::INCIDENTS)?,
            numbers: store.tree(&trees::INCIDENT_NUMBERS)?,
            events: store.tree(&trees::INCIDENT_EVENTS)?,
            open: store.tree(&trees::INCIDENTS_OPEN)?,
            counters: store.tree(&trees::INCIDENT_COUNTERS)?,
            alerts: store.tree(&trees::ALERTS)?,
            incident_alerts: store.tree(&trees::INCIDENT_ALERTS)?,
            groups: store.tree(&trees::ALERT_GROUPS)?,
            by_system: store.tree(&trees::INCIDENTS_BY_SYSTEM)?,
            clusters: store.tree(&trees::CLUSTERS)?,
            clusters_by_system: store.tree(&trees::CLUSTERS_BY_SYSTEM)?,
            bins: store.tree(&trees::REPORT_BINS)?,
            cutoffs: store.tree(&trees::CUTOFFS)?,
            tickets,
            outbox,
            settings: Arc::new(settings),
            changes: broadcast::channel(256).0,
        })
    }

    /// The trees of this module only (a caller's transaction that already holds the
    /// ticket and outbox trees adds these).
    pub fn own_trees(&self) -> Vec<&dyn AnyTree> {
        vec![
            &self.incidents,
            &self.numbers,
            &self.events,
            &self.open,
            &self.counters,
            &self.alerts,
            &self.incident_alerts,
            &self.groups,
            &self.by_system,
            &self.clusters,
            &self.clusters_by_system,
            &self.bins,
            &self.cutoffs,
        ]
    }

    fn trees(&self) -> Vec<&dyn AnyTree> {
        let mut v = self.own_trees();
        v.extend(self.tickets.trees());
        v
    }

    /// Announce committed changes of incidents (for a caller's own transaction).
    pub fn changed(&self, ids: &[u64]) {
        for id in ids {
            let _ = self.changes.send(*id);
        }
    }

    pub fn settings(&self) -> &IncidentSettings {
        &self.settings
    }

    /// Ids of incidents changed from now on (live views). Lagging receivers just reload.
    pub fn subscribe(&self) -> broadcast::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn link(&self, number: &str) -> String {
        format!("{}/console/incidents/{number}", self.settings.public_url)
    }

    /// One transaction over every tree an incident operation touches; then announce the
    /// changed incidents (and tickets) and wake the outbox.
    fn run<R>(
        &self,
        f: impl Fn(&Tx<'_>, &mut Changed) -> Result<R, Abort<IncidentError>>,
    ) -> Result<R, IncidentError> {
        let (r, changed) = self
            .store
            .transaction(&self.trees(), |tx| {
                let mut changed = Changed::default();
                let r = f(tx, &mut changed)?;
                Ok((r, changed))
            })
            .map_err(|e| match e {
                TxError::Abort(e) => e,
                TxError::Store(e) => IncidentError::from(e),
            })?;
        for id in changed.incidents {
            let _ = self.changes.send(id);
        }
        for id in changed.tickets {
            self.tickets.changed(id);
        }
        self.outbox.wake();
        Ok(r)
    }

    // --- reads ----------------------------------------------------------------------------

    pub fn get(&self, id: u64) -> store::Result<Option<Incident>> {
        self.incidents.get(&id)
    }

    pub fn by_number(&self, number: &str) -> store::Result<Option<Incident>> {
        match self.numbers.get(&number.trim().to_uppercase())? {
            Some(id) => self.incidents.get(&id),
            None => Ok(None),
        }
    }

    /// Incidents not resolved, newest first.
    pub fn active(&self) -> store::Result<Vec<Incident>> {
        let mut out = Vec::new();
        for entry in self.open.iter().rev() {
            let (id, ()) = entry?;
            if let Some(i) = self.incidents.get(&id)? {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Numbers of the active incidents `member` follows without a ticket, newest first.
    pub fn subscribed(&self, member: &str) -> store::Result<Vec<String>> {
        Ok(self
            .active()?
            .into_iter()
            .filter(|i| i.subscribers.iter().any(|s| s == member))
            .map(|i| i.number)
            .collect())
    }

    /// The newest `limit` incidents (any status), newest first.
    pub fn recent(&self, limit: usize) -> store::Result<Vec<Incident>> {
        self.incidents
            .iter()
            .rev()
            .take(limit)
            .map(|r| r.map(|(_, i)| i))
            .collect()
    }

    pub fn events(&self, id: u64) -> store::Result<Vec<IncidentEvent>> {
        self.events
            .scan_part(&id)
            .map(|r| r.map(|(_, e)| e))
            .collect()
    }

    /// The alerts of incident `id`, firing first.
    pub fn alerts_of(&self, id: u64) -> store::Result<Vec<Alert>> {
        let mut out = Vec::new();
        for entry in self.incident_alerts.scan_part(&id) {
            let ((_, alert), ()) = entry?;
            if let Some(a) = self.alerts.get(&alert)? {
                out.push(a);
            }
        }
        out.sort_by_key(|a| {
            (
                a.status != AlertStatus::Firing,
                std::cmp::Reverse(a.last_seen),
            )
        });
        Ok(out)
    }

    /// An alert's last state, by its id (`alertmanager/1a30ba71cca2921f`).
    pub fn alert(&self, id: &str) -> store::Result<Option<Alert>> {
        self.alerts.get(&id.to_owned())
    }

    // --- monitors ---------------------------------------------------------------------------

    /// Store what a monitor posted (one transaction): new alerts open or join their group's
    /// incident, repeats change only their "last seen", resolves close alerts (and the
    /// incident when none fires any more, if so configured).
    pub fn ingest(&self, batch: &AlertBatch) -> Result<Ingested, IncidentError> {
        let now = crate::util::unix_millis();
        self.run(|tx, changed| {
            let mut out = Ingested::default();
            for a in &batch.alerts {
                let touched = self.alert_in(tx, batch, a, now, &mut out, changed)?;
                if let Some(inc) = touched {
                    changed.incident(inc.id);
                    if !out.incidents.contains(&inc.number) {
                        out.incidents.push(inc.number);
                    }
                }
            }
            Ok(out)
        })
    }

    /// One alert of a batch; returns the incident it touched.
    fn alert_in(
        &self,
        tx: &Tx<'_>,
        batch: &AlertBatch,
        a: &AlertIn,
        now: i64,
        out: &mut Ingested,
        changed: &mut Changed,
    ) -> Result<Option<Incident>, Abort<IncidentError>> {
        let id = alert_id(batch.source, &a.key);
        let known = tx.get(&self.alerts, &id)?;
        let known_incident = match known.as_ref().and_then(|k| k.incident) {
            Some(i) => tx.get(&self.incidents, &i)?,
            None => None,
        };
        let sender = batch.source.label();
        match a.action {
            Action::Fire => {
                if let (Some(k), Some(inc)) = (&known, &known_incident)
                    && k.status == AlertStatus::Firing
                    && self.same_episode(k, a, inc)
                {
                    // A repeat (Alertmanager's repeat_interval, a sender's retry).
                    let mut k = k.clone();
                    k.last_seen = now;
                    k.repeats += 1;
                    tx.insert(&self.alerts, &id, &k)?;
                    out.repeats += 1;
                    if inc.status.is_active() {
                        let mut inc = inc.clone();
                        inc.last_alert_at = Some(now);
                        self.put_in(tx, &inc)?;
                    }
                    return Ok(Some(inc.clone()));
                }
                // A new alert, or a new firing episode of one we know.
                let group = alert_id(batch.source, &batch.group);
                let mut inc = match tx.get(&self.groups, &group)? {
                    Some(gid) => tx
                        .get(&self.incidents, &gid)?
                        .filter(|i| i.status.is_active()),
                    None => None,
                };
                if inc.is_none() {
                    let mut opened = self.create_in(
                        tx,
                        NewIncident {
                            title: if batch.title.trim().is_empty() {
                                a.summary.clone()
                            } else {
                                batch.title.clone()
                            },
                            system: a.system.clone(),
                            severity: a.severity,
                            priority: a.severity.priority(),
                            source: batch.source,
                            group: Some(group.clone()),
                            opened_by: sender.to_owned(),
                        },
                        now,
                    )?;
                    opened.external_url = batch.external_url.clone();
                    tx.insert(&self.groups, &group, &opened.id)?;
                    out.opened += 1;
                    inc = Some(opened);
                }
                let Some(mut inc) = inc else {
                    return Ok(None);
                };
                let attached_before = known.as_ref().is_some_and(|k| k.incident == Some(inc.id));
                if !attached_before {
                    tx.insert(&self.incident_alerts, &(inc.id, id.clone()), &())?;
                    inc.alerts += 1;
                }
                inc.alerts_firing += 1;
                inc.last_alert_at = Some(now);
                if !inc.sources.contains(&batch.source) {
                    inc.sources.push(batch.source);
                }
                if a.severity < inc.severity {
                    // A worse alert joined: the incident is as bad as its worst alert.
                    inc.severity = a.severity;
                    inc.priority = inc.priority.min(a.severity.priority());
                }
                let alert = Alert {
                    id: id.clone(),
                    source: batch.source,
                    incident: Some(inc.id),
                    status: AlertStatus::Firing,
                    name: a.name.clone(),
                    summary: a.summary.clone(),
                    severity: a.severity,
                    system: a.system.clone(),
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_at: a.starts_at,
                    ends_at: None,
                    generator_url: a.generator_url.clone(),
                    silence_url: a.silence_url.clone(),
                    links: a.links.clone(),
                    details: a.details.clone(),
                    first_seen: known.as_ref().map_or(now, |k| k.first_seen),
                    last_seen: now,
                    repeats: 0,
                };
                tx.insert(&self.alerts, &id, &alert)?;
                self.event_in(
                    tx,
                    inc.id,
                    now,
                    sender,
                    EventKind::AlertFired {
                        alert: id,
                        name: a.name.clone(),
                    },
                )?;
                self.check_major_in(tx, &mut inc, now)?;
                self.put_in(tx, &inc)?;
                out.fired += 1;
                Ok(Some(inc))
            }
            Action::Resolve => {
                let Some(mut k) = known else {
                    // Never seen firing: recorded, nothing else changes.
                    let alert = self.orphan(batch, a, &id, now);
                    tx.insert(&self.alerts, &id, &alert)?;
                    out.unknown += 1;
                    return Ok(None);
                };
                k.last_seen = now;
                if k.status == AlertStatus::Resolved {
                    tx.insert(&self.alerts, &id, &k)?;
                    out.repeats += 1;
                    return Ok(known_incident);
                }
                k.status = AlertStatus::Resolved;
                k.ends_at = a.ends_at.or(Some(now));
                tx.insert(&self.alerts, &id, &k)?;
                out.resolved += 1;
                let Some(mut inc) = known_incident else {
                    return Ok(None);
                };
                inc.alerts_firing = inc.alerts_firing.saturating_sub(1);
                inc.last_alert_at = Some(now);
                self.event_in(
                    tx,
                    inc.id,
                    now,
                    sender,
                    EventKind::AlertResolved {
                        alert: id,
                        name: k.name.clone(),
                    },
                )?;
                if inc.alerts_firing == 0
                    && inc.status.is_active()
                    && self.settings.rules.resolve_with_alerts
                {
                    self.resolve_in(tx, &mut inc, sender, "所有告警已恢复", now, changed)?;
                } else {
                    self.put_in(tx, &inc)?;
                }
                Ok(Some(inc))
            }
            Action::Acknowledge => match known_incident {
                Some(mut inc) if inc.status == IncidentStatus::Open => {
                    self.acknowledge_in(tx, &mut inc, sender, now)?;
                    Ok(Some(inc))
                }
                Some(inc) => Ok(Some(inc)),
                None => {
                    out.unknown += 1;
                    Ok(None)
                }
            },
        }
    }

    /// Whether a firing alert we know is the same firing as `a`: Alertmanager and Grafana
    /// say when it started (a new start is a new episode); an event's key stays the same
    /// firing while its incident is open (PagerDuty: after a resolve, a trigger opens anew).
    fn same_episode(&self, known: &Alert, a: &AlertIn, inc: &Incident) -> bool {
        match known.source {
            Source::Events => inc.status.is_active(),
            _ => known.starts_at == a.starts_at || a.starts_at.is_none(),
        }
    }

    fn orphan(&self, batch: &AlertBatch, a: &AlertIn, id: &str, now: i64) -> Alert {
        Alert {
            id: id.to_owned(),
            source: batch.source,
            incident: None,
            status: AlertStatus::Resolved,
            name: a.name.clone(),
            summary: a.summary.clone(),
            severity: a.severity,
            system: a.system.clone(),
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: a.starts_at,
            ends_at: a.ends_at.or(Some(now)),
            generator_url: a.generator_url.clone(),
            silence_url: a.silence_url.clone(),
            links: a.links.clone(),
            details: a.details.clone(),
            first_seen: now,
            last_seen: now,
            repeats: 0,
        }
    }

    // --- writes inside a transaction ---------------------------------------------------------

    fn put_in<E>(&self, tx: &Tx<'_>, inc: &Incident) -> Result<(), Abort<E>> {
        let mut same_system = tx.get(&self.by_system, &inc.system)?.unwrap_or_default();
        let listed = same_system.contains(&inc.id);
        if inc.status.is_active() {
            tx.insert(&self.open, &inc.id, &())?;
            if !listed {
                same_system.insert(0, inc.id);
                tx.insert(&self.by_system, &inc.system, &same_system)?;
            }
        } else {
            tx.remove(&self.open, &inc.id)?;
            if listed {
                same_system.retain(|i| *i != inc.id);
                tx.insert(&self.by_system, &inc.system, &same_system)?;
            }
        }
        tx.insert(&self.incidents, &inc.id, inc)?;
        Ok(())
    }

    /// The active incidents of `system`, newest first, inside a transaction.
    fn active_for_in<E>(&self, tx: &Tx<'_>, system: &str) -> Result<Vec<Incident>, Abort<E>> {
        let mut out = Vec::new();
        for id in tx
            .get(&self.by_system, &system.to_owned())?
            .unwrap_or_default()
        {
            if let Some(i) = tx.get(&self.incidents, &id)?
                && i.status.is_active()
            {
                out.push(i);
            }
        }
        Ok(out)
    }

    fn event_in<E>(
        &self,
        tx: &Tx<'_>,
        id: u64,
        at: i64,
        actor: &str,
        kind: EventKind,
    ) -> Result<u64, Abort<E>> {
        let seq = tx.generate_id()?;
        let event = IncidentEvent {
            seq,
            at,
            actor: actor.to_owned(),
            kind,
        };
        tx.insert(&self.events, &(id, seq), &event)?;
        Ok(seq)
    }

    fn robot_in<E>(&self, tx: &Tx<'_>, inc: &Incident, content: String) -> Result<(), Abort<E>> {
        let origin = format!("incident/{}", inc.number);
        self.outbox.stage(
            tx,
            &Destination::Robot,
            Message::Markdown { content },
            &origin,
        )?;
        Ok(())
    }

    /// The reporters of the linked tickets, each once, in linking order.
    fn reporters_in<E>(&self, tx: &Tx<'_>, inc: &Incident) -> Result<Vec<String>, Abort<E>> {
        let mut out: Vec<String> = Vec::new();
        for number in &inc.tickets {
            if let Some(t) = self.ticket_in::<E>(tx, number)?
                && !out.contains(&t.reporter)
            {
                out.push(t.reporter);
            }
        }
        for s in &inc.subscribers {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        Ok(out)
    }

    fn ticket_in<E>(&self, tx: &Tx<'_>, number: &str) -> Result<Option<Ticket>, Abort<E>> {
        match self.tickets.id_in::<E>(tx, number)? {
            Some(id) => self.tickets.get_in(tx, id),
            None => Ok(None),
        }
    }

    /// Send `text` to every linked reporter (but those in `except`), each in their own
    /// chat; returns how many and the outbox jobs (the console shows their progress).
    fn tell_reporters_in<E>(
        &self,
        tx: &Tx<'_>,
        inc: &Incident,
        text: &str,
        except: &[String],
    ) -> Result<(usize, Vec<u64>), Abort<E>> {
        let reporters = self.reporters_in::<E>(tx, inc)?;
        let origin = format!("incident/{}", inc.number);
        let mut jobs = Vec::new();
        let mut told = 0;
        for userid in reporters.iter().filter(|r| !except.contains(r)) {
            jobs.extend(self.outbox.stage(
                tx,
                &Destination::Member {
                    userid: userid.clone(),
                },
                Message::text(text.to_owned()),
                &origin,
            )?);
            told += 1;
        }
        Ok((told, jobs))
    }

    fn create_in<E>(&self, tx: &Tx<'_>, new: NewIncident, now: i64) -> Result<Incident, Abort<E>> {
        let day = chrono::DateTime::from_timestamp_millis(now)
            .unwrap_or_default()
            .with_timezone(&self.settings.utc_offset)
            .format("%Y%m%d")
            .to_string();
        let n = tx.get(&self.counters, &day)?.unwrap_or(0) + 1;
        tx.insert(&self.counters, &day, &n)?;
        let number = format!("{}{day}-{n:03}", self.settings.rules.number_prefix);
        let id = tx.generate_id()?;
        let inc = Incident {
            id,
            number: number.clone(),
            title: crate::ident::mask_truncate(new.title.trim(), 200),
            system: new.system,
            severity: new.severity,
            priority: new.priority,
            status: IncidentStatus::Open,
            sources: vec![new.source],
            group: new.group,
            opened_by: new.opened_by.clone(),
            opened_at: now,
            acknowledged_at: None,
            resolved_at: None,
            updated_at: now,
            last_alert_at: None,
            alerts: 0,
            alerts_firing: 0,
            tickets: Vec::new(),
            major: None,
            resolution: None,
            mttr_ms: None,
            tta_ms: None,
            external_url: String::new(),
            subscribers: Vec::new(),
            texts: Vec::new(),
            merged_into: None,
        };
        let mut inc = inc;
        if new.source != Source::Outbreak {
            // An outbreak's title names the system; its reports' texts are what it is about.
            remember_text(&mut inc, &new.title);
        }
        tx.insert(&self.numbers, &number, &id)?;
        self.put_in(tx, &inc)?;
        self.event_in(
            tx,
            id,
            now,
            &new.opened_by,
            EventKind::Opened { source: new.source },
        )?;
        self.robot_in(tx, &inc, notify::robot_opened(&inc, &self.link(&number)))?;
        Ok(inc)
    }

    /// Flag 重大事件 on the first rule that holds, once, with the handler group told.
    fn check_major_in<E>(&self, tx: &Tx<'_>, inc: &mut Incident, now: i64) -> Result<(), Abort<E>> {
        if inc.major.is_some() || !inc.status.is_active() {
            return Ok(());
        }
        let rules = &self.settings.rules;
        let reason = if inc.severity == Severity::Critical {
            "级别为严重（critical）".to_owned()
        } else if now - inc.opened_at > rules.major_after.as_millis() as i64 {
            format!("持续超过 {} 分钟", rules.major_after.as_secs() / 60)
        } else {
            let reporters = self.reporters_in::<E>(tx, inc)?.len();
            if reporters > rules.major_reporters {
                format!(
                    "影响 {reporters} 名报告人（超过 {} 名）",
                    rules.major_reporters
                )
            } else {
                return Ok(());
            }
        };
        inc.major = Some(Major {
            at: now,
            reason: reason.clone(),
        });
        self.event_in(
            tx,
            inc.id,
            now,
            "系统",
            EventKind::Major {
                reason: reason.clone(),
            },
        )?;
        self.robot_in(
            tx,
            inc,
            notify::robot_major(inc, &reason, &self.link(&inc.number)),
        )?;
        Ok(())
    }

    fn acknowledge_in<E>(
        &self,
        tx: &Tx<'_>,
        inc: &mut Incident,
        actor: &str,
        now: i64,
    ) -> Result<(), Abort<E>> {
        inc.status = IncidentStatus::Acknowledged;
        inc.acknowledged_at.get_or_insert(now);
        inc.updated_at = now;
        self.event_in(tx, inc.id, now, actor, EventKind::Acknowledged)?;
        self.put_in(tx, inc)
    }

    /// Resolve: MTTR and time to acknowledge stored, the handler group and every linked
    /// reporter told. With `incidents.resolve_tickets`, the open linked tickets resolve too
    /// (their reporters get the ticket's 已解决 notice with the note and the rating card
    /// instead of a second message).
    fn resolve_in(
        &self,
        tx: &Tx<'_>,
        inc: &mut Incident,
        actor: &str,
        note: &str,
        now: i64,
        changed: &mut Changed,
    ) -> Result<(), Abort<IncidentError>> {
        inc.status = IncidentStatus::Resolved;
        inc.resolved_at = Some(now);
        inc.updated_at = now;
        inc.resolution = Some(note.trim().to_owned());
        inc.mttr_ms = Some(now - inc.opened_at);
        inc.tta_ms = inc.acknowledged_at.map(|a| a - inc.opened_at);
        let mut told_by_ticket: Vec<String> = Vec::new();
        if self.settings.rules.resolve_tickets {
            let ticket_note = if note.trim().is_empty() {
                format!("事件 {} 已恢复", inc.number)
            } else {
                format!("事件 {} 已恢复：{}", inc.number, note.trim())
            };
            for number in &inc.tickets {
                let Some(id) = self.tickets.id_in::<IncidentError>(tx, number)? else {
                    continue;
                };
                if let Some(t) = self.tickets.resolve_for_incident_in::<IncidentError>(
                    tx,
                    id,
                    &ticket_note,
                    now,
                )? {
                    changed.ticket(t.id);
                    if !told_by_ticket.contains(&t.reporter) {
                        told_by_ticket.push(t.reporter);
                    }
                }
            }
        }
        let text = notify::reporter_resolved(inc);
        let (_, jobs) = self.tell_reporters_in::<IncidentError>(tx, inc, &text, &told_by_ticket)?;
        self.event_in(
            tx,
            inc.id,
            now,
            actor,
            EventKind::Resolved {
                note: note.trim().to_owned(),
                jobs,
            },
        )?;
        self.put_in(tx, inc)?;
        self.robot_in(
            tx,
            inc,
            notify::robot_resolved(inc, &self.link(&inc.number)),
        )?;
        Ok(())
    }

    /// Link ticket `number` to `inc` (a handler's link; its reporter is told while the
    /// incident is active). A ticket in another incident is refused.
    fn link_in(
        &self,
        tx: &Tx<'_>,
        inc: &mut Incident,
        number: &str,
        actor: &str,
        now: i64,
        changed: &mut Changed,
    ) -> Result<(), Abort<IncidentError>> {
        let t = self
            .ticket_in::<IncidentError>(tx, number)?
            .ok_or_else(|| abort(IncidentError::NoTicket(number.to_owned())))?;
        if let Some(other) = &t.incident
            && other != &inc.number
        {
            return Err(abort(IncidentError::LinkedElsewhere(
                t.number.clone(),
                other.clone(),
            )));
        }
        let actor = Actor::Handler(actor.to_owned());
        self.attach_in(tx, inc, t, &actor, true, now, changed)?;
        self.put_in(tx, inc)
    }

    /// Attach ticket `t` to `inc` (not stored: the caller puts `inc`). With `tell`, its
    /// reporter hears about it while the incident is active. Returns whether it was new.
    #[allow(clippy::too_many_arguments)]
    fn attach_in<E>(
        &self,
        tx: &Tx<'_>,
        inc: &mut Incident,
        t: Ticket,
        actor: &Actor,
        tell: bool,
        now: i64,
        changed: &mut Changed,
    ) -> Result<bool, Abort<E>> {
        if inc.tickets.contains(&t.number) {
            return Ok(false);
        }
        let t = self
            .tickets
            .set_incident_in::<E>(tx, t, Some(&inc.number), actor, now)?;
        changed.ticket(t.id);
        inc.tickets.push(t.number.clone());
        inc.subscribers.retain(|s| *s != t.reporter);
        remember_text(inc, &t.description);
        inc.updated_at = now;
        let actor_label = match actor {
            Actor::Handler(h) => h.clone(),
            other => other.label(),
        };
        self.event_in(
            tx,
            inc.id,
            now,
            &actor_label,
            EventKind::TicketLinked {
                ticket: t.number.clone(),
            },
        )?;
        if tell && inc.status.is_active() {
            self.outbox.stage(
                tx,
                &Destination::Member {
                    userid: t.reporter.clone(),
                },
                Message::text(notify::reporter_linked(inc, &t.number)),
                &format!("incident/{}", inc.number),
            )?;
        }
        self.check_major_in(tx, inc, now)?;
        Ok(true)
    }

    fn load_in(&self, tx: &Tx<'_>, number: &str) -> Result<Incident, Abort<IncidentError>> {
        let id = tx
            .get(&self.numbers, &number.trim().to_uppercase())?
            .ok_or_else(|| abort(IncidentError::NotFound))?;
        tx.get(&self.incidents, &id)?
            .ok_or_else(|| abort(IncidentError::NotFound))
    }

    // --- handler operations (one transaction each) --------------------------------------------

    /// Declare an incident by hand, with the tickets it stands for.
    pub fn declare(&self, handler: &str, d: &Declare) -> Result<Incident, IncidentError> {
        let title = d.title.trim();
        if title.is_empty() {
            return Err(IncidentError::TitleRequired);
        }
        if d.system.trim().is_empty() {
            return Err(IncidentError::SystemRequired);
        }
        let now = crate::util::unix_millis();
        self.run(|tx, changed| {
            let severity = Severity::of_priority(d.priority);
            let mut inc = self.create_in(
                tx,
                NewIncident {
                    title: title.to_owned(),
                    system: d.system.trim().to_owned(),
                    severity,
                    priority: d.priority,
                    source: Source::Manual,
                    group: None,
                    opened_by: handler.to_owned(),
                },
                now,
            )?;
            changed.incident(inc.id);
            for number in &d.tickets {
                self.link_in(tx, &mut inc, number, handler, now, changed)?;
            }
            self.check_major_in(tx, &mut inc, now)?;
            self.put_in(tx, &inc)?;
            Ok(inc)
        })
    }

    /// Apply a handler's `op` to incident `number`.
    pub fn act(&self, number: &str, handler: &str, op: &Op) -> Result<Incident, IncidentError> {
        let text = match op {
            Op::Update(t) => validate_text(t)?,
            Op::Resolve(t) | Op::Reopen(t) => t.trim().chars().take(MAX_TEXT).collect(),
            Op::Acknowledge | Op::Link(_) | Op::Unlink(_) | Op::Split(_) | Op::Merge(_) => {
                String::new()
            }
        };
        let now = crate::util::unix_millis();
        // Sled transactions cannot scan: a merge reads the alerts to move first.
        let merged_alerts = match op {
            Op::Merge(_) => match self.by_number(number)? {
                Some(i) => from_alerts(self, i.id),
                None => return Err(IncidentError::NotFound),
            },
            _ => Vec::new(),
        };
        self.run(|tx, changed| {
            let mut inc = self.load_in(tx, number)?;
            changed.incident(inc.id);
            match op {
                Op::Acknowledge => {
                    if inc.status != IncidentStatus::Open {
                        return Err(abort(IncidentError::Illegal(inc.status, "确认")));
                    }
                    self.acknowledge_in(tx, &mut inc, handler, now)?;
                }
                Op::Update(_) => {
                    if !inc.status.is_active() {
                        return Err(abort(IncidentError::Illegal(inc.status, "发布进展")));
                    }
                    let text_out = notify::reporter_update(&inc, &text);
                    let (sent, jobs) =
                        self.tell_reporters_in::<IncidentError>(tx, &inc, &text_out, &[])?;
                    inc.updated_at = now;
                    self.event_in(
                        tx,
                        inc.id,
                        now,
                        handler,
                        EventKind::Update {
                            text: text.clone(),
                            reporters: sent,
                            jobs,
                        },
                    )?;
                    self.put_in(tx, &inc)?;
                }
                Op::Resolve(_) => {
                    if !inc.status.is_active() {
                        return Err(abort(IncidentError::Illegal(inc.status, "解决")));
                    }
                    self.resolve_in(tx, &mut inc, handler, &text, now, changed)?;
                }
                Op::Reopen(_) => {
                    if inc.status.is_active() {
                        return Err(abort(IncidentError::Illegal(inc.status, "重新打开")));
                    }
                    inc.status = IncidentStatus::Open;
                    inc.resolved_at = None;
                    inc.mttr_ms = None;
                    inc.resolution = None;
                    inc.updated_at = now;
                    self.event_in(
                        tx,
                        inc.id,
                        now,
                        handler,
                        EventKind::Reopened {
                            reason: text.clone(),
                        },
                    )?;
                    self.put_in(tx, &inc)?;
                    self.robot_in(
                        tx,
                        &inc,
                        notify::robot_reopened(&inc, &text, &self.link(&inc.number)),
                    )?;
                }
                Op::Link(ticket) => {
                    self.link_in(tx, &mut inc, ticket, handler, now, changed)?;
                }
                Op::Unlink(ticket) => {
                    let ticket = ticket.trim().to_uppercase();
                    self.unlink_in(tx, &mut inc, &ticket, handler, now, changed)?;
                    self.put_in(tx, &inc)?;
                }
                Op::Split(ticket) => {
                    let ticket = ticket.trim().to_uppercase();
                    let t = self.unlink_in(tx, &mut inc, &ticket, handler, now, changed)?;
                    self.put_in(tx, &inc)?;
                    let mut split = self.create_in(
                        tx,
                        NewIncident {
                            title: format!("{}：{}", t.system, t.description),
                            system: t.system.clone(),
                            severity: inc.severity,
                            priority: inc.priority,
                            source: Source::Manual,
                            group: None,
                            opened_by: handler.to_owned(),
                        },
                        now,
                    )?;
                    changed.incident(split.id);
                    let actor = Actor::Handler(handler.to_owned());
                    self.attach_in(tx, &mut split, t, &actor, true, now, changed)?;
                    self.put_in(tx, &split)?;
                }
                Op::Merge(into) => {
                    let mut target = self.load_in(tx, into)?;
                    if target.id == inc.id {
                        return Err(abort(IncidentError::MergeSelf));
                    }
                    changed.incident(target.id);
                    let moves = Merge {
                        alerts: &merged_alerts,
                        handler,
                        now,
                    };
                    self.merge_in(tx, &mut inc, &mut target, &moves, changed)?;
                }
            }
            Ok(inc)
        })
    }

    /// Unlink ticket `number` from `inc` (not stored); returns the ticket.
    fn unlink_in(
        &self,
        tx: &Tx<'_>,
        inc: &mut Incident,
        number: &str,
        actor: &str,
        now: i64,
        changed: &mut Changed,
    ) -> Result<Ticket, Abort<IncidentError>> {
        let Some(pos) = inc.tickets.iter().position(|t| t == number) else {
            return Err(abort(IncidentError::NotLinked(number.to_owned())));
        };
        inc.tickets.remove(pos);
        let t = self
            .ticket_in::<IncidentError>(tx, number)?
            .ok_or_else(|| abort(IncidentError::NoTicket(number.to_owned())))?;
        let handler = Actor::Handler(actor.to_owned());
        let t = self.tickets.set_incident_in(tx, t, None, &handler, now)?;
        changed.ticket(t.id);
        inc.updated_at = now;
        self.event_in(
            tx,
            inc.id,
            now,
            actor,
            EventKind::TicketUnlinked {
                ticket: number.to_owned(),
            },
        )?;
        Ok(t)
    }

    /// Merge `from` into `into`: its tickets, subscribers, alerts and group move; it
    /// resolves as merged (nobody is told twice: its reporters now hear from `into`).
    fn merge_in(
        &self,
        tx: &Tx<'_>,
        from: &mut Incident,
        into: &mut Incident,
        m: &Merge<'_>,
        changed: &mut Changed,
    ) -> Result<(), Abort<IncidentError>> {
        let (handler, now) = (m.handler, m.now);
        let actor = Actor::Handler(handler.to_owned());
        for number in std::mem::take(&mut from.tickets) {
            if let Some(t) = self.ticket_in::<IncidentError>(tx, &number)? {
                let t = self.tickets.set_incident_in(tx, t, None, &actor, now)?;
                self.attach_in(tx, into, t, &actor, false, now, changed)?;
            }
        }
        for s in std::mem::take(&mut from.subscribers) {
            if !into.subscribers.contains(&s) {
                into.subscribers.push(s);
            }
        }
        if let Some(group) = from.group.take() {
            tx.insert(&self.groups, &group, &into.id)?;
        }
        for alert_id in m.alerts {
            if let Some(mut a) = tx.get(&self.alerts, alert_id)? {
                a.incident = Some(into.id);
                if a.status == AlertStatus::Firing {
                    into.alerts_firing += 1;
                }
                tx.insert(&self.alerts, alert_id, &a)?;
                tx.insert(&self.incident_alerts, &(into.id, alert_id.clone()), &())?;
                tx.remove(&self.incident_alerts, &(from.id, alert_id.clone()))?;
                into.alerts += 1;
            }
        }
        for src in &from.sources {
            if !into.sources.contains(src) {
                into.sources.push(*src);
            }
        }
        if from.severity < into.severity {
            into.severity = from.severity;
            into.priority = into.priority.min(from.priority);
        }
        for t in std::mem::take(&mut from.texts) {
            remember_text(into, &t);
        }
        from.alerts = 0;
        from.alerts_firing = 0;
        from.status = IncidentStatus::Resolved;
        from.resolved_at = Some(now);
        from.updated_at = now;
        from.merged_into = Some(into.number.clone());
        from.resolution = Some(format!("已合并到事件 {}", into.number));
        from.mttr_ms = Some(now - from.opened_at);
        from.tta_ms = from.acknowledged_at.map(|a| a - from.opened_at);
        into.updated_at = now;
        self.event_in(
            tx,
            from.id,
            now,
            handler,
            EventKind::MergedInto {
                incident: into.number.clone(),
            },
        )?;
        self.event_in(
            tx,
            into.id,
            now,
            handler,
            EventKind::MergedFrom {
                incident: from.number.clone(),
            },
        )?;
        self.check_major_in(tx, into, now)?;
        self.put_in(tx, from)?;
        self.put_in(tx, into)
    }

    /// Set the similarity cut-off of `system` (a handler's tuning, on the timeline of
    /// incident `number`).
    pub fn set_cutoff(
        &self,
        number: &str,
        handler: &str,
        cutoff: f32,
    ) -> Result<(), IncidentError> {
        if !(0.05..=0.95).contains(&cutoff) {
            return Err(IncidentError::BadCutoff);
        }
        let now = crate::util::unix_millis();
        self.run(|tx, changed| {
            let inc = self.load_in(tx, number)?;
            changed.incident(inc.id);
            tx.insert(&self.cutoffs, &inc.system, &cutoff)?;
            self.event_in(tx, inc.id, now, handler, EventKind::CutoffSet { cutoff })?;
            Ok(())
        })
    }

    /// The similarity cut-off of `system` (its own, or the configured one).
    pub fn cutoff(&self, system: &str) -> store::Result<f32> {
        Ok(self
            .cutoffs
            .get(&system.to_owned())?
            .unwrap_or(self.settings.rules.similarity_cutoff))
    }

    /// The periodic rules: 重大 by duration, and resolving incidents whose alerts have been
    /// silent for `incidents.auto_resolve_hours`. Returns how many incidents changed.
    pub fn sweep(&self, now: i64) -> Result<usize, IncidentError> {
        let rules = &self.settings.rules;
        let silent_for = rules.auto_resolve_after.as_millis() as i64;
        let mut changed_count = 0;
        for inc in self.active()? {
            let stale = inc.alerts > 0
                && inc
                    .last_alert_at
                    .is_some_and(|last| now - last > silent_for);
            let long =
                inc.major.is_none() && now - inc.opened_at > rules.major_after.as_millis() as i64;
            if !stale && !long {
                continue;
            }
            let hours = rules.auto_resolve_after.as_secs() / 3600;
            let done = self.run(|tx, changed| {
                let Some(mut cur) = tx.get(&self.incidents, &inc.id)? else {
                    return Ok(false);
                };
                if !cur.status.is_active() {
                    return Ok(false);
                }
                changed.incident(cur.id);
                self.check_major_in(tx, &mut cur, now)?;
                if stale {
                    let note = format!("超过 {hours} 小时未收到告警，自动解决");
                    self.resolve_in(tx, &mut cur, "系统", &note, now, changed)?;
                } else {
                    self.put_in(tx, &cur)?;
                }
                Ok(true)
            })?;
            if done {
                changed_count += 1;
            }
        }
        Ok(changed_count)
    }
}

/// A handler's action on an incident.
#[derive(Debug, Clone)]
pub enum Op {
    Acknowledge,
    /// Broadcast to every linked reporter.
    Update(String),
    /// With the resolution note.
    Resolve(String),
    /// With the reason.
    Reopen(String),
    Link(String),
    Unlink(String),
    /// Unlink the ticket and make it an incident of its own (a wrongly merged report).
    Split(String),
    /// Merge this incident into the one numbered.
    Merge(String),
}

/// Keep `text` (masked, short) among what an incident is about, the latest 20.
fn remember_text(inc: &mut Incident, text: &str) {
    let t = crate::ident::mask_truncate(text.trim(), 100);
    if t.is_empty() || inc.texts.contains(&t) {
        return;
    }
    inc.texts.push(t);
    if inc.texts.len() > 20 {
        inc.texts.remove(0);
    }
}

/// What a merge moves: the merged incident's alerts, read before its transaction.
struct Merge<'a> {
    alerts: &'a [String],
    handler: &'a str,
    now: i64,
}

/// The alert ids of incident `id` (read outside a transaction: sled transactions cannot
/// scan; a merge racing a new alert of the merged incident leaves that alert where it is).
fn from_alerts(incidents: &Incidents, id: u64) -> Vec<String> {
    incidents
        .incident_alerts
        .scan_part(&id)
        .filter_map(|r| r.ok().map(|((_, a), ())| a))
        .collect()
}

struct NewIncident {
    title: String,
    system: String,
    severity: Severity,
    priority: Priority,
    source: Source,
    group: Option<String>,
    opened_by: String,
}

/// What a transaction changed, announced after it commits.
#[derive(Default)]
struct Changed {
    incidents: Vec<u64>,
    tickets: Vec<u64>,
}

impl Changed {
    fn incident(&mut self, id: u64) {
        if !self.incidents.contains(&id) {
            self.incidents.push(id);
        }
    }

    fn ticket(&mut self, id: u64) {
        if !self.tickets.contains(&id) {
            self.tickets.push(id);
        }
    }
}

#[cfg(test)]
mod tests;
