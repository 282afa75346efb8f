//! Members' display names, looked up off the ordered path.
//!
//! A name is cosmetic (notices to handlers, the ticket's reporter), so the conversation
//! never waits for WeCom's `user/get`: [`Engine::prepare`](super::Engine::prepare) uses the
//! cached name or the userid and asks this worker for a lookup. The worker looks names up one
//! at a time with a short deadline and caches them (a failure for a few minutes), so a
//! hanging WeCom API delays nobody's answer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::shutdown::{Shutdown, WorkerError};
use crate::tickets::Tickets;
use crate::wecom::client::Client;

/// How long one `user/get` may take.
const LOOKUP_DEADLINE: Duration = Duration::from_secs(3);
/// Lookups waiting at most; more requests are dropped (asked again at the next message).
const QUEUE: usize = 256;

/// The lookup queue and its worker.
pub struct NameLookups {
    tickets: Tickets,
    client: Arc<Client>,
    tx: mpsc::Sender<String>,
    /// The receiving end, held by the running worker (kept across restarts).
    rx: tokio::sync::Mutex<mpsc::Receiver<String>>,
    /// Userids queued or being looked up, so a burst from one member asks once.
    queued: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for NameLookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameLookups").finish_non_exhaustive()
    }
}

impl NameLookups {
    pub fn new(tickets: Tickets, client: Arc<Client>) -> Arc<NameLookups> {
        let (tx, rx) = mpsc::channel(QUEUE);
        Arc::new(NameLookups {
            tickets,
            client,
            tx,
            rx: tokio::sync::Mutex::new(rx),
            queued: Mutex::new(HashSet::new()),
        })
    }

    fn queued(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.queued.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask for `userid`'s name (nothing happens when it is already asked for or the queue is
    /// full: the next message asks again).
    pub fn request(&self, userid: &str) {
        if !self.queued().insert(userid.to_owned()) {
            return;
        }
        if self.tx.try_send(userid.to_owned()).is_err() {
            self.queued().remove(userid);
        }
    }
}

impl crate::shutdown::Worker for NameLookups {
    fn name(&self) -> &'static str {
        "member-names"
    }

    async fn run(self: Arc<Self>, mut shutdown: Shutdown) -> Result<(), WorkerError> {
        let mut rx = self.rx.lock().await;
        loop {
            let userid = tokio::select! {
                () = shutdown.wait() => return Ok(()),
                next = rx.recv() => match next {
                    Some(u) => u,
                    None => return Ok(()),
                },
            };
            let fetched = self
                .tickets
                .fetch_name(&self.client, &userid, LOOKUP_DEADLINE)
                .await;
            self.queued().remove(&userid);
            fetched?;
        }
    }
}
