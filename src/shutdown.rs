//! The shutdown signal shared by the server and every worker, and the supervisor that keeps
//! workers running.
//!
//! [`Shutdown`] is a cheap, cloneable receiver; [`Trigger::trigger`] fires it once for all.
//! [`supervise`] runs a worker until shutdown, restarting it (with a pause) when it returns an
//! error or panics, so a bug in one message cannot stop the desk.

use std::future::Future;
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

/// Run `make()` under supervision until `shutdown`: a worker that fails or panics is logged
/// and started again after a pause that grows up to 30 s.
pub fn supervise<F, Fut>(name: &'static str, shutdown: Shutdown, make: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(200);
        loop {
            let outcome = tokio::spawn(make()).await;
            if shutdown.is_triggered() {
                tracing::debug!(worker = name, "stopped");
                return;
            }
            match outcome {
                Ok(Ok(())) => {
                    tracing::warn!(worker = name, "worker returned early; restarting");
                }
                Ok(Err(e)) => {
                    tracing::error!(worker = name, error = %format!("{e:#}"), "worker failed; restarting");
                }
                Err(join) => {
                    tracing::error!(worker = name, error = %join, "worker panicked; restarting");
                }
            }
            let mut sd = shutdown.clone();
            tokio::select! {
                () = sd.wait() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn supervisor_restarts_after_panics_and_stops_on_shutdown() {
        let (trigger, shutdown) = channel();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let sd = shutdown.clone();
        let handle = supervise("test", shutdown, move || {
            let r = r.clone();
            let mut sd = sd.clone();
            async move {
                let n = r.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    panic!("boom {n}");
                }
                sd.wait().await;
                Ok(())
            }
        });
        while runs.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        trigger.trigger();
        handle.await.expect("supervisor ends");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
