//! Logging setup. Log lines carry fields (msg_id, job, ticket), never message text, tokens,
//! keys or whole ID/phone numbers; see `tickets::mask` for what may be shown.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber: `RUST_LOG` if set, else `info` for this crate and `warn`
/// for dependencies. Safe to call more than once (later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,wecom_helpdesk=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The process's Prometheus recorder (`metrics` + `metrics-exporter-prometheus`), installed
/// at the first call; `/metrics` renders it. Counters and histograms are recorded where
/// things happen (`metrics::counter!`), gauges are set at scrape time.
pub fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
            .map(|b| b.build_recorder())
            .unwrap_or_else(|_| {
                metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder()
            });
        let handle = recorder.handle();
        // Another recorder already installed (a test harness): ours still renders what it
        // was given, and the macros go to the other one.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}
