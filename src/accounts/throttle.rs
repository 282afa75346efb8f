//! Failed console logins, remembered in memory to slow down password guessing without
//! locking out a whole office behind one NAT.
//!
//! - Only **failures** count; a success clears the (account, address) record.
//! - Two budgets: per (account, address), for accounts that exist (so guessing at one account
//!   from one place backs off), and per address across accounts, `ADDRESS_FACTOR` times
//!   larger (so one place cannot sweep many accounts). Names of accounts that do not exist
//!   are never keys: a flood of invented names cannot grow the map.
//! - Past the budget every further failure locks the key for `FIRST_LOCK`, doubling up to
//!   `MAX_LOCK`; the refusal says when to retry. A lock starting is logged once (the audit
//!   line), not every refused attempt.
//! - Bounded: at most `MAX_KEYS` records; records idle for `FORGET_AFTER` are dropped first,
//!   then the oldest.

use std::collections::HashMap;
use std::time::{Duration, Instant};

const MAX_KEYS: usize = 10_000;
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
const FIRST_LOCK: Duration = Duration::from_secs(30);
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
const ADDRESS_FACTOR: u32 = 4;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// The failure records (see the module docs).
#[derive(Debug)]
pub(super) struct Throttle {
    /// Failures an (account, address) may have before a lock.
    free: u32,
    records: HashMap<String, Failures>,
}

/// What a login attempt is counted under.
pub(super) struct Keys {
    account: Option<String>,
    address: String,
}

impl Keys {
    /// `account`: the login, only when that account exists.
    pub(super) fn new(account: Option<&str>, address: &str) -> Keys {
        Keys {
            account: account.map(|a| format!("account/{a}@{address}")),
            address: format!("address/{address}"),
        }
    }

    fn each(&self) -> impl Iterator<Item = &String> {
        self.account.iter().chain(std::iter::once(&self.address))
    }
}

impl Throttle {
    pub(super) fn new(free: u32) -> Throttle {
        Throttle {
            free: free.max(1),
            records: HashMap::new(),
        }
    }

    fn budget(&self, key: &str) -> u32 {
        if key.starts_with("address/") {
            self.free * ADDRESS_FACTOR
        } else {
            self.free
        }
    }

    /// `Err(wait)` while any of `keys` is locked.
    pub(super) fn check(&self, keys: &Keys, now: Instant) -> Result<(), Duration> {
        let wait = keys
            .each()
            .filter_map(|k| self.records.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// Count a failure; returns the lock it started, if any.
    pub(super) fn fail(&mut self, keys: &Keys, now: Instant) -> Option<Duration> {
        self.make_room(now);
        let mut started = None;
        for key in keys.each() {
            let budget = self.budget(key);
            let r = self.records.entry(key.clone()).or_insert(Failures {
                count: 0,
                last: now,
                locked_until: None,
            });
            r.count += 1;
            r.last = now;
            if r.count >= budget {
                let doublings = (r.count - budget).min(16);
                let lock = FIRST_LOCK.saturating_mul(1 << doublings).min(MAX_LOCK);
                r.locked_until = Some(now + lock);
                started = started.max(Some(lock));
            }
        }
        started
    }

    /// A successful login clears its (account, address) record; the address keeps its
    /// failures (they were other accounts').
    pub(super) fn succeed(&mut self, keys: &Keys) {
        if let Some(k) = &keys.account {
            self.records.remove(k);
        }
    }

    /// Keep the map bounded: drop idle records, then the oldest, before adding one.
    fn make_room(&mut self, now: Instant) {
        if self.records.len() < MAX_KEYS {
            return;
        }
        self.records.retain(|_, r| {
            now.duration_since(r.last) < FORGET_AFTER || r.locked_until.is_some_and(|u| u > now)
        });
        while self.records.len() >= MAX_KEYS {
            let Some(oldest) = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.last)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.records.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_budget_lock_with_a_doubling_wait() {
        let mut t = Throttle::new(3);
        let now = Instant::now();
        let keys = Keys::new(Some("admin"), "10.0.0.1");
        assert_eq!(t.fail(&keys, now), None);
        assert_eq!(t.fail(&keys, now), None);
        assert_eq!(t.fail(&keys, now), Some(FIRST_LOCK));
        assert_eq!(t.check(&keys, now), Err(FIRST_LOCK));
        let later = now + FIRST_LOCK;
        assert_eq!(t.check(&keys, later), Ok(()));
        assert_eq!(t.fail(&keys, later), Some(FIRST_LOCK * 2));
        // The same account from another address is not locked.
        assert_eq!(
            t.check(&Keys::new(Some("admin"), "10.0.0.2"), later),
            Ok(())
        );
    }

    #[test]
    fn success_clears_the_account_and_unknown_names_are_not_keys() {
        let mut t = Throttle::new(3);
        let now = Instant::now();
        let keys = Keys::new(Some("admin"), "10.0.0.1");
        t.fail(&keys, now);
        t.fail(&keys, now);
        t.succeed(&keys);
        assert_eq!(t.fail(&keys, now), None, "counting starts again");
        for _ in 0..100 {
            t.fail(&Keys::new(None, "10.0.0.9"), now);
        }
        assert_eq!(t.len(), 3, "one record per address, none per invented name");
        assert!(
            t.check(&Keys::new(None, "10.0.0.9"), now).is_err(),
            "the address is capped"
        );
    }

    #[test]
    fn the_map_stays_bounded() {
        let mut t = Throttle::new(3);
        let now = Instant::now();
        for i in 0..(MAX_KEYS + 500) {
            t.fail(
                &Keys::new(
                    None,
                    &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                ),
                now,
            );
        }
        assert!(t.len() <= MAX_KEYS);
    }
}
