//! Outbreak detection, the stored part: every new report (a ticket, or a question the FAQ
//! could not answer) is counted in its system's 5-minute bin, matched against the system's
//! active incidents (a late reporter joins the known incident at once) and otherwise
//! against its open clusters of similar reports; a cluster with enough distinct reporters
//! while the system's count is above its baseline becomes an incident — or joins the
//! incident already open for the system (an alert's, say): correlation.
//!
//! It runs inside the conversation's transaction and is bounded: one record lists a
//! system's open clusters (at most [`MAX_OPEN_CLUSTERS`]), each compared through its latest
//! [`MAX_COMPARED`] reports; the baseline reads at most 8 windows of bins.

use std::collections::BTreeSet;

use super::outbreak::{self, BIN_MS, MIN_FEATURES};
use super::{Changed, Incident, Incidents, NewIncident, notify, remember_text};
use super::{Cluster, ClusterMember, EventKind, Severity, Source};
use crate::store::{Abort, Tx};
use crate::tickets::{Actor, Ticket};
use crate::wecom::outbound::{Destination, Message};

/// Open clusters kept per system.
const MAX_OPEN_CLUSTERS: usize = 64;
/// Reports of a cluster a new report is compared with (the latest ones).
const MAX_COMPARED: usize = 30;
/// Reports kept per cluster.
const MAX_MEMBERS: usize = 500;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A new report.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub system: &'a str,
    pub text: &'a str,
    pub reporter: &'a str,
    /// The ticket it filed (already written in this transaction), if any.
    pub ticket: Option<&'a Ticket>,
}

/// What a report led to.
#[derive(Debug, Clone, Default)]
pub struct Reported {
    /// The incident the report is part of now (the reporter is told it is a known issue).
    pub incident: Option<Incident>,
    pub changed_tickets: Vec<u64>,
    pub changed_incidents: Vec<u64>,
}

fn best_match<'a>(feats: &BTreeSet<String>, texts: impl Iterator<Item = &'a str>) -> f32 {
    texts
        .map(|t| outbreak::jaccard(feats, &outbreak::features(t)))
        .fold(0.0, f32::max)
}

impl Incidents {
    /// The system a question names (`incidents.system_keywords`, then the intake's system
    /// names themselves), for clustering questions the FAQ could not answer.
    pub fn system_named(&self, text: &str, systems: &[String]) -> Option<String> {
        for (system, words) in &self.settings.rules.system_keywords {
            if words.iter().any(|w| text.contains(w.as_str())) {
                return Some(system.clone());
            }
        }
        systems
            .iter()
            .find(|s| {
                s.split('/')
                    .any(|part| !part.is_empty() && text.contains(part))
            })
            .cloned()
    }

    /// Count, match and cluster a new report (see the module docs). Never refuses: a report
    /// that cannot be clustered (too little text) is only counted.
    pub fn report_in<E>(
        &self,
        tx: &Tx<'_>,
        r: &Report<'_>,
        now: i64,
    ) -> Result<Reported, Abort<E>> {
        let mut changed = Changed::default();
        let mut out = Reported::default();
        let system = r.system.trim().to_owned();
        if system.is_empty() {
            return Ok(out);
        }
        self.count_in::<E>(tx, &system, now)?;
        let feats = outbreak::features(r.text);
        if feats.len() < MIN_FEATURES {
            return Ok(out);
        }
        let cutoff = tx
            .get(&self.cutoffs, &system)?
            .unwrap_or(self.settings.rules.similarity_cutoff);

        // A late reporter: an active incident of the system already stands for it.
        if let Some(inc) = self.known_match_in::<E>(tx, r, &feats, cutoff, now, &mut changed)? {
            out.incident = Some(inc);
            return Ok(self.finish(out, changed));
        }

        // Otherwise its cluster: the most alike open one, or a new one.
        let mut open = tx
            .get(&self.clusters_by_system, &system)?
            .unwrap_or_default();
        let window = self.settings.rules.outbreak_window.as_millis() as i64;
        let mut best: Option<(f32, Cluster)> = None;
        let mut still_open = Vec::with_capacity(open.len());
        for id in &open {
            let Some(c) = tx.get(&self.clusters, id)? else {
                continue;
            };
            if now - c.last_at > window {
                continue;
            }
            still_open.push(*id);
            let latest = c
                .members
                .iter()
                .rev()
                .take(MAX_COMPARED)
                .map(|m| m.text.as_str());
            let score = best_match(&feats, latest);
            if score >= cutoff && best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, c));
            }
        }
        open = still_open;
        let text = crate::ident::mask_truncate(r.text.trim(), 100);
        let member = ClusterMember {
            reporter: r.reporter.to_owned(),
            ticket: r.ticket.map(|t| t.number.clone()),
            text: text.clone(),
            at: now,
        };
        let mut cluster = match best {
            Some((_, mut c)) => {
                // The same words from the same reporter count once.
                let repeated = c
                    .members
                    .iter()
                    .any(|m| m.reporter == r.reporter && outbreak::features(&m.text) == feats);
                if (!repeated || member.ticket.is_some()) && c.members.len() < MAX_MEMBERS {
                    c.members.push(member);
                }
                c.last_at = now;
                c
            }
            None => {
                let c = Cluster {
                    id: tx.generate_id()?,
                    system: system.clone(),
                    opened_at: now,
                    last_at: now,
                    members: vec![member],
                    incident: None,
                };
                open.insert(0, c.id);
                open.truncate(MAX_OPEN_CLUSTERS);
                c
            }
        };
        tx.insert(&self.clusters_by_system, &system, &open)?;

        // A cluster already an incident's: join it (a resolved one leaves the cluster free).
        if let Some(id) = cluster.incident
            && let Some(mut inc) = tx.get(&self.incidents, &id)?
            && inc.status.is_active()
        {
            self.join_in::<E>(tx, &mut inc, r, now, &mut changed)?;
            out.incident = Some(inc);
        } else if cluster.reporters() >= self.settings.rules.outbreak_min_reporters
            && self.above_baseline_in::<E>(tx, &system, now)?
        {
            let inc = self.outbreak_in::<E>(tx, &mut cluster, r.reporter, now, &mut changed)?;
            out.incident = Some(inc);
        }
        tx.insert(&self.clusters, &cluster.id, &cluster)?;
        Ok(self.finish(out, changed))
    }

    /// Only the late-reporter part of [`Incidents::report_in`]: join the system's active
    /// incident the report matches, if any (a question the FAQ can answer is not counted
    /// or clustered, but during an incident it is most likely about it).
    pub fn known_in<E>(&self, tx: &Tx<'_>, r: &Report<'_>, now: i64) -> Result<Reported, Abort<E>> {
        let mut changed = Changed::default();
        let mut out = Reported::default();
        let feats = outbreak::features(r.text);
        if r.system.trim().is_empty() || feats.len() < MIN_FEATURES {
            return Ok(out);
        }
        let cutoff = tx
            .get(&self.cutoffs, &r.system.trim().to_owned())?
            .unwrap_or(self.settings.rules.similarity_cutoff);
        out.incident = self.known_match_in::<E>(tx, r, &feats, cutoff, now, &mut changed)?;
        Ok(self.finish(out, changed))
    }

    fn known_match_in<E>(
        &self,
        tx: &Tx<'_>,
        r: &Report<'_>,
        feats: &BTreeSet<String>,
        cutoff: f32,
        now: i64,
        changed: &mut Changed,
    ) -> Result<Option<Incident>, Abort<E>> {
        for mut inc in self.active_for_in::<E>(tx, r.system.trim())? {
            if best_match(feats, inc.texts.iter().map(String::as_str)) >= cutoff {
                self.join_in::<E>(tx, &mut inc, r, now, changed)?;
                return Ok(Some(inc));
            }
        }
        Ok(None)
    }

    fn finish(&self, mut out: Reported, changed: Changed) -> Reported {
        out.changed_incidents = changed.incidents;
        out.changed_tickets = changed.tickets;
        out
    }

    /// Count a report in its system's bin (and remember the system's first bin: the
    /// baseline uses only days it has seen).
    fn count_in<E>(&self, tx: &Tx<'_>, system: &str, now: i64) -> Result<(), Abort<E>> {
        let bin = outbreak::bin_of(now);
        let key = (system.to_owned(), bin);
        let n = tx.get(&self.bins, &key)?.unwrap_or(0);
        tx.insert(&self.bins, &key, &(n + 1))?;
        let first = (system.to_owned(), 0);
        if tx.get(&self.bins, &first)?.is_none() {
            tx.insert(&self.bins, &first, &bin)?;
        }
        Ok(())
    }

    /// Reports of `system` in the window ending at `end`.
    fn window_count_in<E>(&self, tx: &Tx<'_>, system: &str, end: i64) -> Result<u64, Abort<E>> {
        let window = self.settings.rules.outbreak_window.as_millis() as i64;
        let (from, to) = (
            outbreak::bin_of(end - window + BIN_MS),
            outbreak::bin_of(end),
        );
        let mut n = 0;
        for bin in from.max(1)..=to {
            n += tx.get(&self.bins, &(system.to_owned(), bin))?.unwrap_or(0);
        }
        Ok(n)
    }

    /// Whether `system`'s reports in the window now exceed its baseline: the same window of
    /// the previous days it has history for (see [`outbreak::threshold`]).
    fn above_baseline_in<E>(&self, tx: &Tx<'_>, system: &str, now: i64) -> Result<bool, Abort<E>> {
        let count = self.window_count_in::<E>(tx, system, now)?;
        let first = tx
            .get(&self.bins, &(system.to_owned(), 0))?
            .unwrap_or(u64::MAX);
        let window = self.settings.rules.outbreak_window.as_millis() as i64;
        let mut history = Vec::new();
        for day in 1..=outbreak::BASELINE_DAYS {
            let end = now - day * DAY_MS;
            if outbreak::bin_of(end - window) < first {
                break;
            }
            history.push(self.window_count_in::<E>(tx, system, end)?);
        }
        let floor = self.settings.rules.outbreak_min_reporters.saturating_sub(1) as u64;
        Ok(count > outbreak::threshold(&history, floor))
    }

    /// A cluster reached the threshold: it becomes an incident, or joins the one already
    /// open for its system. Every earlier reporter is told (the current one hears it in the
    /// conversation's reply).
    fn outbreak_in<E>(
        &self,
        tx: &Tx<'_>,
        cluster: &mut Cluster,
        current: &str,
        now: i64,
        changed: &mut Changed,
    ) -> Result<Incident, Abort<E>> {
        // Correlation: an incident of a monitor's alerts for the system (alerts speak of
        // the system in other words than agents do), or an outbreak of the system opened
        // within the window (agents describe one fault in many words), takes the burst.
        let window = self.settings.rules.outbreak_window.as_millis() as i64;
        let related = self
            .active_for_in::<E>(tx, &cluster.system)?
            .into_iter()
            .find(|i| {
                i.alerts > 0
                    || (i.sources.contains(&Source::Outbreak) && now - i.opened_at <= window)
            });
        let mut inc = match related {
            Some(existing) => existing,
            None => {
                let first = cluster.members.first().map_or("", |m| m.text.as_str());
                self.create_in(
                    tx,
                    NewIncident {
                        title: format!("{}：{}", cluster.system, first),
                        system: cluster.system.clone(),
                        severity: Severity::Error,
                        priority: Severity::Error.priority(),
                        source: Source::Outbreak,
                        group: None,
                        opened_by: Source::Outbreak.label().to_owned(),
                    },
                    now,
                )?
            }
        };
        if !inc.sources.contains(&Source::Outbreak) {
            inc.sources.push(Source::Outbreak);
        }
        changed.incident(inc.id);
        self.event_in(
            tx,
            inc.id,
            now,
            Source::Outbreak.label(),
            EventKind::Reports {
                reporters: cluster.reporters(),
            },
        )?;
        for m in &cluster.members {
            remember_text(&mut inc, &m.text);
            let tell = m.reporter != current;
            match &m.ticket {
                Some(number) => {
                    if let Some(t) = self.ticket_in::<E>(tx, number)?
                        && t.incident.is_none()
                    {
                        self.attach_in::<E>(tx, &mut inc, t, &Actor::System, tell, now, changed)?;
                    }
                }
                None => {
                    self.subscribe_in::<E>(tx, &mut inc, &m.reporter, tell)?;
                }
            }
        }
        cluster.incident = Some(inc.id);
        self.check_major_in(tx, &mut inc, now)?;
        self.put_in(tx, &inc)?;
        Ok(inc)
    }

    /// A report joins an active incident: its ticket linked, or its reporter subscribed.
    fn join_in<E>(
        &self,
        tx: &Tx<'_>,
        inc: &mut Incident,
        r: &Report<'_>,
        now: i64,
        changed: &mut Changed,
    ) -> Result<(), Abort<E>> {
        changed.incident(inc.id);
        remember_text(inc, r.text);
        match r.ticket {
            Some(t) => {
                self.attach_in::<E>(tx, inc, t.clone(), &Actor::System, false, now, changed)?;
            }
            None => self.subscribe_in::<E>(tx, inc, r.reporter, false)?,
        }
        self.check_major_in(tx, inc, now)?;
        self.put_in(tx, inc)
    }

    /// A member without a ticket hears the incident's progress (unless a ticket of theirs
    /// is linked, which does the same).
    fn subscribe_in<E>(
        &self,
        tx: &Tx<'_>,
        inc: &mut Incident,
        reporter: &str,
        tell: bool,
    ) -> Result<(), Abort<E>> {
        if inc.subscribers.iter().any(|s| s == reporter) {
            return Ok(());
        }
        for number in &inc.tickets {
            if self
                .ticket_in::<E>(tx, number)?
                .is_some_and(|t| t.reporter == reporter)
            {
                return Ok(());
            }
        }
        inc.subscribers.push(reporter.to_owned());
        if tell {
            self.outbox.stage(
                tx,
                &Destination::Member {
                    userid: reporter.to_owned(),
                },
                Message::text(notify::reporter_subscribed(inc)),
                &format!("incident/{}", inc.number),
            )?;
        }
        Ok(())
    }

    /// The member says their report is a different problem: their ticket `ticket` (or
    /// their subscription) leaves incident `number`. Returns the incident left, if any.
    pub fn detach_in<E>(
        &self,
        tx: &Tx<'_>,
        reporter: &str,
        ticket: Option<&Ticket>,
        number: &str,
        now: i64,
    ) -> Result<Option<Incident>, Abort<E>> {
        // The ticket as it is now (the caller's copy may predate the link).
        let ticket = match ticket {
            Some(t) => self.ticket_in::<E>(tx, &t.number)?,
            None => None,
        };
        let ticket = ticket.as_ref();
        let Some(id) = tx.get(&self.numbers, &number.to_owned())? else {
            return Ok(None);
        };
        let Some(mut inc) = tx.get(&self.incidents, &id)? else {
            return Ok(None);
        };
        let actor = Actor::Reporter(reporter.to_owned());
        let mut detached = None;
        if let Some(t) = ticket
            && let Some(pos) = inc.tickets.iter().position(|n| *n == t.number)
        {
            inc.tickets.remove(pos);
            self.tickets
                .set_incident_in::<E>(tx, t.clone(), None, &actor, now)?;
            detached = Some(t.number.clone());
        } else if let Some(pos) = inc.subscribers.iter().position(|s| s == reporter) {
            inc.subscribers.remove(pos);
        } else {
            return Ok(None);
        }
        inc.updated_at = now;
        self.event_in(
            tx,
            inc.id,
            now,
            &actor.label(),
            EventKind::Detached {
                ticket: detached,
                reporter: reporter.to_owned(),
            },
        )?;
        self.put_in(tx, &inc)?;
        Ok(Some(inc))
    }
}
