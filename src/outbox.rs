//! The durable outbox: every message to WeCom, and the one worker that delivers them.
//!
//! Trees (declared here only):
//! - `outbox`: `(String lane, u64 job id)` → [`Job`], pending or in flight. Jobs are staged
//!   with [`Outbox::stage`] inside the transaction of the change that caused them, so a
//!   message exists exactly when its cause does. Keyed by lane so that the head of every lane
//!   is one seek away, however long the queue behind it.
//! - `outbox_lane`: `u64 job id` → `String lane`, to find a queued job by id.
//! - `outbox_dead`: `u64 job id` → [`Job`] that exhausted its attempts or failed for good.
//! - `outbox_done`: `u64 job id` → [`Delivered`], recent deliveries, so the console can show
//!   "sent" for a reply. Swept after a week.
//!
//! Delivery rules (at-least-once outbound):
//! - **Order per lane.** A lane is a member (all messages to one member) or the robot; only
//!   the oldest job of a lane is ever in flight, and a later job waits while an earlier one
//!   backs off. Long text was split at staging time into consecutive jobs, so parts arrive
//!   in order.
//! - **Rate limits by queueing.** A lane has a per-minute budget (30 per member, 20 for the
//!   robot); when it is spent the lane waits for its window, nothing is dropped.
//! - **Durable before visible.** Before a batch is sent, the store is flushed, so no message
//!   reaches WeCom whose cause could still be lost in a crash.
//! - **Retry with capped exponential backoff** on transient errors (`-1`, 45009, network,
//!   timeouts, 5xx) for `outbox.retry_budget_mins` from the first attempt (a day by default,
//!   so an outage of WeCom or of our network delays replies but loses none). The head being
//!   retried holds its lane, so a member's replies stay in order. A permanent error (e.g. an
//!   unknown user), or a spent budget, dead-letters the head and the lane goes on: the dead
//!   letter is listed in the console and by `outbox dead`, and can be retried by hand. Jobs
//!   found in flight at start were interrupted and go back to pending.
//! - **Resends are not shown twice.** A re-attempt (after a timeout, a crash, an error) may
//!   repeat a message WeCom already delivered, so it goes with WeCom's duplicate check over
//!   the time since the job's first attempt. Lanes are FIFO, so nothing identical was
//!   legitimately sent to that member in that window; first attempts go without the check,
//!   and so does a re-attempt whose lane delivered the very same message within the window
//!   (the member was meant to get it twice), so a text repeated on purpose ("请重新输入…")
//!   always arrives.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::config::OutboxConfig;
use crate::shutdown::{Shutdown, WorkerError};
use crate::store::trees;
use crate::store::{self, AnyTree, Record, Store, Tree, Tx, TxError, TxFail};
use crate::wecom::client::{Client, ClientError};
use crate::wecom::outbound::{Destination, Message, split_for};

/// Jobs sent concurrently in one round (different lanes).
const BATCH: usize = 16;
const DONE_TTL_SECS: i64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    InFlight,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: u64,
    pub dest: Destination,
    pub msg: Message,
    pub state: JobState,
    pub attempts: u32,
    /// Unix ms before which the job is not retried.
    pub not_before: i64,
    pub created_at: i64,
    /// Unix ms of the first delivery attempt (set, and flushed, before it is made).
    #[serde(default)]
    pub first_attempt_at: Option<i64>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// What caused the message (e.g. `ticket/IT20261121-0001`), for the console.
    #[serde(default)]
    pub origin: String,
}

impl Record for Job {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    pub at: i64,
    pub attempts: u32,
    #[serde(default)]
    pub origin: String,
    /// WeCom's response_code of an interactive card (to update it later).
    #[serde(default)]
    pub response_code: String,
}

impl Record for Delivered {}

/// Delivery status of one job, for the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Queued {
        attempts: u32,
        last_error: Option<String>,
    },
    Sent {
        at: i64,
    },
    Failed {
        error: String,
    },
    Unknown,
}

#[derive(Clone, Debug)]
pub struct Outbox {
    store: Store,
    jobs: Tree<(String, u64), Job>,
    lanes: Tree<u64, String>,
    dead: Tree<u64, Job>,
    done: Tree<u64, Delivered>,
    notify: Arc<Notify>,
}

impl Outbox {
    pub fn open(store: &Store) -> store::Result<Outbox> {
        Ok(Outbox {
            store: store.clone(),
            jobs: store.tree(&trees::OUTBOX)?,
            lanes: store.tree(&trees::OUTBOX_LANE)?,
            dead: store.tree(&trees::OUTBOX_DEAD)?,
            done: store.tree(&trees::OUTBOX_DONE)?,
            notify: Arc::new(Notify::new()),
        })
    }

    /// The trees a transaction must include to call [`Outbox::stage`].
    pub fn trees(&self) -> [&dyn AnyTree; 2] {
        [&self.jobs, &self.lanes]
    }

    /// Stage `msg` for `dest` inside the caller's transaction, split to the byte limits.
    /// Returns the job ids in delivery order. Call [`Outbox::wake`] after the commit.
    pub fn stage(
        &self,
        tx: &Tx<'_>,
        dest: &Destination,
        msg: Message,
        origin: &str,
    ) -> Result<Vec<u64>, TxFail> {
        let now = crate::util::unix_millis();
        let lane = dest.lane();
        let mut ids = Vec::new();
        for part in split_for(dest, msg) {
            let id = tx.generate_id()?;
            tx.insert(&self.lanes, &id, &lane)?;
            tx.insert(
                &self.jobs,
                &(lane.clone(), id),
                &Job {
                    id,
                    dest: dest.clone(),
                    msg: part,
                    state: JobState::Pending,
                    attempts: 0,
                    not_before: 0,
                    created_at: now,
                    first_attempt_at: None,
                    last_error: None,
                    origin: origin.to_owned(),
                },
            )?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Stage outside any other change (e.g. an operator notice): its own transaction.
    pub fn enqueue(
        &self,
        dest: &Destination,
        msg: Message,
        origin: &str,
    ) -> store::Result<Vec<u64>> {
        let ids = self
            .store
            .transaction::<_, Infallible>(&self.trees(), |tx| {
                Ok(self.stage(tx, dest, msg.clone(), origin)?)
            })
            .map_err(TxError::into_store)?;
        self.wake();
        Ok(ids)
    }

    pub fn wake(&self) {
        self.notify.notify_one();
    }

    fn queued(&self, id: u64) -> store::Result<Option<Job>> {
        match self.lanes.get(&id)? {
            Some(lane) => self.jobs.get(&(lane, id)),
            None => Ok(None),
        }
    }

    pub fn status(&self, id: u64) -> store::Result<Status> {
        if let Some(job) = self.queued(id)? {
            return Ok(Status::Queued {
                attempts: job.attempts,
                last_error: job.last_error,
            });
        }
        if let Some(d) = self.done.get(&id)? {
            return Ok(Status::Sent { at: d.at });
        }
        if let Some(job) = self.dead.get(&id)? {
            return Ok(Status::Failed {
                error: job.last_error.unwrap_or_default(),
            });
        }
        Ok(Status::Unknown)
    }

    pub fn pending(&self) -> store::Result<Vec<Job>> {
        self.jobs.iter().map(|r| r.map(|(_, j)| j)).collect()
    }

    pub fn dead_letters(&self) -> store::Result<Vec<Job>> {
        self.dead.iter().map(|r| r.map(|(_, j)| j)).collect()
    }

    /// How many jobs wait (without decoding them: `/metrics` asks on every scrape).
    pub fn pending_count(&self) -> usize {
        self.jobs.len()
    }

    pub fn dead_count(&self) -> usize {
        self.dead.len()
    }

    /// Put a dead job back in the queue with fresh attempts.
    pub fn retry_dead(&self, id: u64) -> store::Result<bool> {
        let moved = self
            .store
            .transaction::<_, Infallible>(&[&self.jobs, &self.lanes, &self.dead], |tx| {
                let Some(mut job) = tx.get(&self.dead, &id)? else {
                    return Ok(false);
                };
                job.state = JobState::Pending;
                job.attempts = 0;
                job.not_before = 0;
                let lane = job.dest.lane();
                tx.remove(&self.dead, &id)?;
                tx.insert(&self.lanes, &id, &lane)?;
                tx.insert(&self.jobs, &(lane, id), &job)?;
                Ok(true)
            })
            .map_err(TxError::into_store)?;
        self.wake();
        Ok(moved)
    }

    /// The oldest job of the first lane after `after` (or the first lane), wrapping around.
    fn next_head(&self, after: Option<&str>) -> store::Result<Option<Job>> {
        use std::ops::Bound::{Excluded, Unbounded};
        if let Some(lane) = after {
            let bound = (lane.to_owned(), u64::MAX);
            if let Some(entry) = self.jobs.range((Excluded(bound), Unbounded)).next() {
                return entry.map(|(_, j)| Some(j));
            }
        }
        self.jobs.first().map(|o| o.map(|(_, j)| j))
    }

    /// Move a finished job out of the queue into `done` or `dead`, in one transaction.
    fn finish(&self, job: &Job, outcome: Result<Delivered, ()>) -> store::Result<()> {
        let key = (job.dest.lane(), job.id);
        self.store
            .transaction::<_, Infallible>(
                &[&self.jobs, &self.lanes, &self.done, &self.dead],
                |tx| {
                    tx.remove(&self.jobs, &key)?;
                    tx.remove(&self.lanes, &job.id)?;
                    match &outcome {
                        Ok(d) => tx.insert(&self.done, &job.id, d)?,
                        Err(()) => tx.insert(&self.dead, &job.id, job)?,
                    }
                    Ok(())
                },
            )
            .map_err(TxError::into_store)
    }

    /// Jobs left in flight by a crash go back to pending.
    fn requeue_in_flight(&self) -> store::Result<usize> {
        let mut n = 0;
        for entry in self.jobs.iter() {
            let (key, mut job) = entry?;
            if job.state == JobState::InFlight {
                job.state = JobState::Pending;
                self.jobs.insert(&key, &job)?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn sweep_done(&self) -> store::Result<()> {
        let cutoff = crate::util::unix_millis() - DONE_TTL_SECS * 1000;
        for entry in self.done.iter() {
            let (id, d) = entry?;
            if d.at < cutoff {
                self.done.remove(&id)?;
            }
        }
        Ok(())
    }
}

/// Sliding one-minute windows per lane.
#[derive(Debug, Default)]
struct RateLimiter {
    sent: HashMap<String, VecDeque<Instant>>,
}

impl RateLimiter {
    /// When `lane` may send next (now if it has budget left).
    fn next_slot(&mut self, lane: &str, limit: u32, now: Instant) -> Instant {
        let window = Duration::from_secs(60);
        let q = self.sent.entry(lane.to_owned()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if (q.len() as u32) < limit {
            now
        } else {
            q.front().map_or(now, |t| *t + window)
        }
    }

    fn record(&mut self, lane: &str, at: Instant) {
        // Bounded: lanes with nothing in the last minute are forgotten now and then.
        if self.sent.len() >= 4096 {
            let window = Duration::from_secs(60);
            self.sent
                .retain(|_, q| q.back().is_some_and(|t| at.duration_since(*t) < window));
        }
        self.sent.entry(lane.to_owned()).or_default().push_back(at);
    }
}

/// The delivery worker.
pub struct Deliverer {
    outbox: Outbox,
    client: Arc<Client>,
    cfg: OutboxConfig,
}

impl crate::shutdown::Worker for Deliverer {
    fn name(&self) -> &'static str {
        "outbox"
    }

    async fn run(self: Arc<Self>, shutdown: Shutdown) -> Result<(), WorkerError> {
        Ok(self.deliver_until(shutdown).await?)
    }
}

/// What one run of the [`Deliverer`] remembers between rounds.
#[derive(Default)]
struct Lanes {
    limiter: RateLimiter,
    /// Lane where the last round stopped, for round-robin fairness.
    cursor: Option<String>,
    /// The last message delivered in each lane and when, to know when WeCom's duplicate
    /// check would swallow a re-attempt of a text repeated on purpose.
    last_sent: HashMap<String, (Message, Instant)>,
}

impl Lanes {
    /// Whether a re-attempt of `job` may ask WeCom to drop it as a duplicate within `window`:
    /// not when the lane's previous delivery, inside that window, was the same message (the
    /// member was meant to get it twice).
    fn may_dedupe(&self, job: &Job, window: Duration, now: Instant) -> bool {
        !self
            .last_sent
            .get(&job.dest.lane())
            .is_some_and(|(msg, at)| *msg == job.msg && now.duration_since(*at) < window)
    }

    fn delivered(&mut self, lane: String, msg: Message, at: Instant) {
        if self.last_sent.len() >= 10_000 {
            self.last_sent
                .retain(|_, (_, t)| at.duration_since(*t) < LAST_SENT_KEPT);
        }
        self.last_sent.insert(lane, (msg, at));
    }
}

/// Added to the time since a job's first attempt to make WeCom's duplicate-check window
/// (clocks and whole seconds).
const DEDUPE_MARGIN: Duration = Duration::from_secs(10);

/// How long a lane's last delivery is kept when the map is pruned (past 10,000 lanes).
const LAST_SENT_KEPT: Duration = Duration::from_secs(3600);

impl Deliverer {
    pub fn new(outbox: Outbox, client: Arc<Client>, cfg: OutboxConfig) -> Deliverer {
        Deliverer {
            outbox,
            client,
            cfg,
        }
    }

    fn limit_for(&self, lane: &str) -> u32 {
        if lane == "robot" {
            self.cfg.robot_per_minute
        } else {
            self.cfg.member_per_minute
        }
    }

    /// Whether a transient failure of `job` is tried again: within the retry budget since its
    /// first attempt, and under `max_attempts` when that is set.
    fn may_retry(&self, job: &Job, now_ms: i64) -> bool {
        let first = job.first_attempt_at.unwrap_or(now_ms);
        let within_budget = now_ms - first < self.cfg.retry_budget.as_millis() as i64;
        let under_cap = self.cfg.max_attempts == 0 || job.attempts < self.cfg.max_attempts;
        within_budget && under_cap
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let exp = self
            .cfg
            .backoff_base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let capped = exp.min(self.cfg.backoff_max);
        // Up to 20 % jitter so that lanes that failed together do not retry together.
        let mut b = [0u8; 1];
        crate::util::random_bytes(&mut b);
        capped + capped.mul_f64(f64::from(b[0]) / 255.0 * 0.2)
    }

    async fn deliver_until(&self, mut shutdown: Shutdown) -> store::Result<()> {
        let mut lanes = Lanes::default();
        let requeued = self.outbox.requeue_in_flight()?;
        if requeued > 0 {
            tracing::info!(requeued, "re-queued jobs interrupted in flight");
        }
        let mut last_sweep = Instant::now();
        loop {
            let wait = self.round(&mut lanes).await?;
            if last_sweep.elapsed() > Duration::from_secs(3600) {
                self.outbox.sweep_done()?;
                last_sweep = Instant::now();
            }
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = shutdown.wait() => return Ok(()),
                () = self.outbox.notify.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Send one batch of due lane heads. Returns how long to wait before the next round
    /// (zero: go again at once).
    #[tracing::instrument(name = "outbox_round", skip_all)]
    async fn round(&self, lanes: &mut Lanes) -> store::Result<Duration> {
        let now_ms = crate::util::unix_millis();
        let now = Instant::now();
        let mut seen_lanes = HashSet::new();
        let mut batch = Vec::new();
        let mut next_wake = Duration::from_secs(60);
        // Visit lanes round-robin from where the last round stopped, one seek per lane.
        let mut cursor = lanes.cursor.clone();
        while let Some(job) = self.outbox.next_head(cursor.as_deref())? {
            let lane = job.dest.lane();
            if !seen_lanes.insert(lane.clone()) {
                break; // wrapped around
            }
            cursor = Some(lane.clone());
            if job.not_before > now_ms {
                next_wake = next_wake.min(Duration::from_millis((job.not_before - now_ms) as u64));
                continue;
            }
            let slot = lanes.limiter.next_slot(&lane, self.limit_for(&lane), now);
            if slot > now {
                next_wake = next_wake.min(slot - now);
                continue;
            }
            batch.push(job);
            if batch.len() >= BATCH {
                break;
            }
        }
        lanes.cursor = cursor;
        if batch.is_empty() {
            return Ok(next_wake);
        }

        for job in &mut batch {
            job.state = JobState::InFlight;
            job.attempts += 1;
            job.first_attempt_at.get_or_insert(now_ms);
            self.outbox.jobs.insert(&(job.dest.lane(), job.id), job)?;
        }
        // Durable before visible: the causes of these messages (and their in-flight marks)
        // are on disk before WeCom sees anything.
        self.outbox.store.durable().await?;

        let client = &self.client;
        let results = futures_util::future::join_all(batch.iter().map(|job| {
            // Re-attempts may repeat a delivered message: let WeCom drop the copy (see the
            // module docs), unless that would drop a repetition meant to arrive.
            let dedupe = (job.attempts > 1).then(|| {
                let first = job.first_attempt_at.unwrap_or(now_ms);
                Duration::from_millis((now_ms - first).max(0) as u64) + DEDUPE_MARGIN
            });
            let dedupe = dedupe.filter(|window| lanes.may_dedupe(job, *window, now));
            deliver(client, self.outbox.store.media(), job, dedupe)
        }))
        .await;
        let sent_at = Instant::now();
        for (mut job, result) in batch.into_iter().zip(results) {
            let lane = job.dest.lane();
            match result {
                Ok(response_code) => {
                    lanes.limiter.record(&lane, sent_at);
                    let done = Delivered {
                        at: crate::util::unix_millis(),
                        attempts: job.attempts,
                        origin: job.origin.clone(),
                        response_code,
                    };
                    self.outbox.finish(&job, Ok(done))?;
                    metrics::counter!("helpdesk_deliveries_total", "result" => "sent").increment(1);
                    tracing::debug!(job = job.id, lane, kind = job.msg.kind(), "delivered");
                    lanes.delivered(lane, job.msg, sent_at);
                }
                Err(e) => {
                    if matches!(e, ClientError::Api { .. }) {
                        // WeCom saw the request; count it against the lane's budget.
                        lanes.limiter.record(&lane, sent_at);
                    }
                    job.last_error = Some(e.to_string());
                    if e.is_retryable() && self.may_retry(&job, now_ms) {
                        let delay = self.backoff(job.attempts);
                        job.state = JobState::Pending;
                        job.not_before = crate::util::unix_millis() + delay.as_millis() as i64;
                        metrics::counter!("helpdesk_deliveries_total", "result" => "retry")
                            .increment(1);
                        tracing::warn!(job = job.id, lane, attempts = job.attempts, error = %e, delay_ms = delay.as_millis() as u64, "delivery failed; will retry");
                        self.outbox.jobs.insert(&(lane, job.id), &job)?;
                    } else {
                        metrics::counter!("helpdesk_deliveries_total", "result" => "dead")
                            .increment(1);
                        tracing::error!(job = job.id, lane, attempts = job.attempts, error = %e, "delivery failed; dead-lettered");
                        self.outbox.finish(&job, Err(()))?;
                    }
                }
            }
        }
        Ok(Duration::ZERO)
    }
}

/// Send one job, asking WeCom to drop it as a duplicate of anything identical within
/// `dedupe`; returns the card response_code when WeCom gives one.
async fn deliver(
    client: &Client,
    media: &crate::store::media::MediaStore,
    job: &Job,
    dedupe: Option<Duration>,
) -> Result<String, ClientError> {
    let msg = &job.msg;
    // Images and files: upload from the media store, then send by media_id (to the member
    // through the app; a bot reply URL takes no uploaded media).
    if let Message::Image { media: hash } | Message::File { media: hash, .. } = msg {
        let userid = match &job.dest {
            Destination::Member { userid }
            | Destination::BotResponse {
                fallback_userid: userid,
                ..
            } => userid,
            _ => return Err(ClientError::Unsupported("media go to a member")),
        };
        let bytes = media
            .get(hash)
            .map_err(|e| ClientError::Network(e.to_string()))?
            .ok_or_else(|| ClientError::MissingMedia(hash.clone()))?;
        let (kind, name, content_type) = match msg {
            Message::File { name, .. } => ("file", name.clone(), "application/octet-stream"),
            _ => (
                "image",
                format!("{}.png", &hash[..12.min(hash.len())]),
                crate::store::media::sniff(&bytes).unwrap_or("image/png"),
            ),
        };
        let media_id = client
            .media_upload(kind, &name, content_type, bytes)
            .await?;
        return client
            .send_media(userid, kind, &media_id, dedupe)
            .await
            .map(|s| s.response_code);
    }
    match &job.dest {
        Destination::Member { userid } => client
            .send_message(userid, msg, dedupe)
            .await
            .map(|s| s.response_code),
        Destination::Robot => client.robot_send(msg).await.map(|()| String::new()),
        Destination::BotResponse {
            url,
            fallback_userid,
        } => match client.bot_respond(url, msg).await {
            Ok(()) => Ok(String::new()),
            // A spent, expired, failing or unreachable response_url: the member still gets
            // the message, from the app, at once (a lane never waits on a dead URL).
            Err(
                e @ (ClientError::Api { .. } | ClientError::Status(_) | ClientError::Network(_)),
            ) => {
                tracing::info!(error = %e, "response_url failed; falling back to message/send");
                client
                    .send_message(fallback_userid, msg, dedupe)
                    .await
                    .map(|s| s.response_code)
            }
            Err(e) => Err(e),
        },
        Destination::CardUpdate {
            userid,
            response_code,
        } => {
            let label = match msg {
                Message::Text { content, .. } => content.as_str(),
                _ => "已处理",
            };
            client
                .update_card_button(userid, response_code, label)
                .await
                .map(|()| String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_queues_instead_of_dropping() {
        let mut r = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.next_slot("member/a", 3, t0), t0);
            r.record("member/a", t0);
        }
        let next = r.next_slot("member/a", 3, t0);
        assert_eq!(next, t0 + Duration::from_secs(60));
        // Another lane is unaffected.
        assert_eq!(r.next_slot("member/b", 3, t0), t0);
        // After the window the budget is back.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(r.next_slot("member/a", 3, later), later);
    }

    #[tokio::test]
    async fn staging_splits_and_orders_and_status_follows_the_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 8 << 20).expect("open");
        let outbox = Outbox::open(&store).expect("outbox");
        let dest = Destination::Member {
            userid: "zhangsan".into(),
        };
        let long = "问".repeat(1500);
        let ids = outbox
            .enqueue(&dest, Message::text(long.clone()), "test")
            .expect("enqueue");
        assert_eq!(ids.len(), 3);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let jobs = outbox.pending().expect("pending");
        let text: String = jobs.iter().map(|j| j.msg.preview()).collect();
        assert_eq!(text, long);
        assert!(matches!(
            outbox.status(ids[0]).expect("status"),
            Status::Queued { .. }
        ));
        assert_eq!(outbox.status(999_999).expect("status"), Status::Unknown);
    }
}
