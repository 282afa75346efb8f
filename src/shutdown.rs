//! The shutdown signal shared by the server and every worker, and the supervisor that keeps
//! workers running.
//!
//! [`Shutdown`] is a cheap, cloneable receiver; [`Trigger::trigger`] fires it once for all.
//! Every background task is a [`Worker`] (a name and `run(shutdown)`); [`supervise`] runs it
//! until shutdown, restarting it (with a pause) when it returns an error or panics, so a bug
//! in one message cannot stop the desk. [`periodic`] makes a worker of blocking work done
//! every so often. A leaf: depends on nothing else in the crate.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

#[derive(Debug, Clone)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

/// A new trigger and its first receiver.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx })
}

impl Trigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// Resolves once shutdown was triggered (at once if it already was).
    pub async fn wait(&mut self) {
        // An error means every trigger was dropped: treat that as shutdown too.
        let _ = self.rx.wait_for(|v| *v).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}

/// The error a worker run ends with; the supervisor logs it (with its sources) and restarts.
pub type WorkerError = Box<dyn std::error::Error + Send + Sync>;

/// A background task of the desk: runs until `shutdown`, under [`supervise`].
pub trait Worker: Send + Sync + 'static {
    /// Names the worker in logs.
    fn name(&self) -> &'static str;

    /// One run. It returns `Ok` once `shutdown` fired; an error or a panic makes the
    /// supervisor start another run after a pause.
    fn run(
        self: Arc<Self>,
        shutdown: Shutdown,
    ) -> impl Future<Output = Result<(), WorkerError>> + Send;
}

/// How long a run must last to count as healthy: the restart pause starts over after it.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
const FIRST_PAUSE: Duration = Duration::from_millis(200);
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Run `worker` under supervision until `shutdown`: a run that fails or panics is logged and
/// started again after a pause that doubles up to 30 s, and starts over from 200 ms after a
/// run that lasted a minute. The handle resolves when the worker has stopped for shutdown.
pub fn supervise<W: Worker>(worker: Arc<W>, shutdown: Shutdown) -> JoinHandle<()> {
    tokio::spawn(async move {
        let name = worker.name();
        let mut pause = FIRST_PAUSE;
        loop {
            let started = tokio::time::Instant::now();
            let outcome = tokio::spawn(worker.clone().run(shutdown.clone())).await;
            if shutdown.is_triggered() {
                match outcome {
                    Ok(Ok(())) => tracing::info!(worker = name, "stopped"),
                    Ok(Err(e)) => {
                        tracing::warn!(worker = name, error = %Chain(&*e), "stopped with an error")
                    }
                    Err(join) => {
                        tracing::error!(worker = name, error = %join, "panicked while stopping")
                    }
                }
                return;
            }
            match outcome {
                Ok(Ok(())) => {
                    tracing::warn!(worker = name, "worker returned early; restarting");
                }
                Ok(Err(e)) => {
                    tracing::error!(worker = name, error = %Chain(&*e), "worker failed; restarting");
                }
                Err(join) => {
                    tracing::error!(worker = name, error = %join, "worker panicked; restarting");
                }
            }
            if started.elapsed() >= HEALTHY_RUN {
                pause = FIRST_PAUSE;
            }
            let mut sd = shutdown.clone();
            tokio::select! {
                () = sd.wait() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_PAUSE);
        }
    })
}

/// A worker that runs blocking `f` every `every` on tokio's blocking threads (see
/// [`periodic`]).
pub struct Periodic<F> {
    name: &'static str,
    every: Duration,
    f: Arc<F>,
}

/// A [`Worker`] running `f` now and then every `every`, off the async threads. An error is
/// logged and the next round runs as planned; a panic restarts the worker.
pub fn periodic<F>(name: &'static str, every: Duration, f: F) -> Arc<Periodic<F>>
where
    F: Fn() -> Result<(), WorkerError> + Send + Sync + 'static,
{
    Arc::new(Periodic {
        name,
        every,
        f: Arc::new(f),
    })
}

impl<F> Worker for Periodic<F>
where
    F: Fn() -> Result<(), WorkerError> + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    async fn run(self: Arc<Self>, mut shutdown: Shutdown) -> Result<(), WorkerError> {
        loop {
            let f = self.f.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || f()).await? {
                tracing::error!(worker = self.name, error = %Chain(&*e), "periodic work failed");
            }
            tokio::select! {
                () = shutdown.wait() => return Ok(()),
                () = tokio::time::sleep(self.every) => {}
            }
        }
    }
}

/// Displays an error with its sources: `outer: inner: root`.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Flaky {
        runs: AtomicU32,
    }

    impl Worker for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }

        async fn run(self: Arc<Self>, mut shutdown: Shutdown) -> Result<(), WorkerError> {
            let n = self.runs.fetch_add(1, Ordering::SeqCst);
            match n {
                0 => panic!("boom"),
                1 => Err("failed".into()),
                _ => {
                    shutdown.wait().await;
                    Ok(())
                }
            }
        }
    }

    #[tokio::test]
    async fn supervisor_restarts_after_panics_and_errors_and_stops_on_shutdown() {
        let (trigger, shutdown) = channel();
        let worker = Arc::new(Flaky {
            runs: AtomicU32::new(0),
        });
        let handle = supervise(worker.clone(), shutdown);
        while worker.runs.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        trigger.trigger();
        handle.await.expect("supervisor ends");
        assert_eq!(worker.runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn periodic_work_runs_again_after_an_error_and_stops_on_shutdown() {
        let (trigger, shutdown) = channel();
        let rounds = Arc::new(AtomicU32::new(0));
        let r = rounds.clone();
        let worker = periodic("count", Duration::from_millis(5), move || {
            r.fetch_add(1, Ordering::SeqCst);
            Err("every round fails".into())
        });
        let handle = supervise(worker, shutdown);
        while rounds.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        trigger.trigger();
        handle.await.expect("supervisor ends");
    }

    #[test]
    fn chain_shows_every_source() {
        let outer = Wrap(std::io::Error::other("disk full"));
        assert_eq!(Chain(&outer).to_string(), "wrapped: disk full");
    }

    #[derive(Debug)]
    struct Wrap(std::io::Error);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
