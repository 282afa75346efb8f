//! Composition root: open the store, build the services, spawn the supervised workers, serve
//! HTTP, and shut down in order (HTTP first, then workers, then a final flush).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::accounts::{Accounts, AuthError, Role};
use crate::config::{Config, loopback_for};
use crate::conversation::media::Fetcher;
use crate::conversation::names::NameLookups;
use crate::conversation::session::Sessions;
use crate::conversation::{Engine, EngineSettings, Worker};
use crate::dashboard::Dashboard;
use crate::dashboard::export::Audit;
use crate::dashboard::weekly::Weekly;
use crate::editor::Editor;
use crate::http::{self, AppState};
use crate::inbox::Inbox;
use crate::incidents::{IncidentSettings, Incidents};
use crate::kb::Kb;
use crate::kb::log::FaqLog;
use crate::outbox::{Deliverer, Outbox};
use crate::script::Scripts;
use crate::shutdown::{self, Shutdown, periodic, supervise};
use crate::store::{Health, Store};
use crate::tickets::{TicketSettings, Tickets};
use crate::wecom::MsgCrypt;
use crate::wecom::client::{Client, ClientConfig};

/// Everything the services share, built once.
pub struct Services {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub inbox: Inbox,
    pub outbox: Outbox,
    pub tickets: Tickets,
    pub incidents: Incidents,
    pub dashboard: Dashboard,
    pub weekly: Arc<Weekly>,
    pub audit: Audit,
    pub editor: Editor,
    pub tools: crate::accounts::tools::Tools,
    pub scripts: Arc<Scripts>,
    pub kb: Arc<Kb>,
    pub faq_log: FaqLog,
    pub accounts: Arc<Accounts>,
    pub client: Arc<Client>,
    pub engine: Arc<Engine>,
    /// Whether the database writes (the storage watchdog keeps it).
    pub storage: Arc<Health>,
}

impl Services {
    /// Open the store and build the services. `api_base` is the resolved WeCom API base and
    /// `public_url` the base of console links.
    pub fn build(
        cfg: Arc<Config>,
        api_base: String,
        public_url: String,
    ) -> crate::Result<Services> {
        // The metrics recorder, before anything records.
        crate::telemetry::prometheus();
        let scripts = Arc::new(Scripts::load(&cfg.paths.scripts_dir)?);
        let store = Store::open(&cfg.storage.data_dir, cfg.storage.cache_capacity_bytes)?;
        let inbox = Inbox::open(&store)?;
        let outbox = Outbox::open(&store)?;
        let tickets = Tickets::open(
            &store,
            outbox.clone(),
            TicketSettings {
                prefix: cfg.tickets.number_prefix.clone(),
                utc_offset: cfg.utc_offset(),
                public_url: public_url.clone(),
                calendar: cfg.business_hours.clone(),
            },
        )?;
        let incidents = Incidents::open(
            &store,
            tickets.clone(),
            outbox.clone(),
            IncidentSettings {
                rules: cfg.incidents.clone(),
                utc_offset: cfg.utc_offset(),
                public_url,
            },
        )?;
        let faq_log = FaqLog::open(&store)?;
        let dashboard = Dashboard {
            tickets: tickets.clone(),
            incidents: incidents.clone(),
            faq_log: faq_log.clone(),
            sla: cfg.sla.clone(),
            utc_offset: cfg.utc_offset(),
        };
        let weekly = Arc::new(Weekly::open(
            &store,
            dashboard.clone(),
            outbox.clone(),
            &cfg.reports.weekly_cron,
            incidents.settings().public_url.clone(),
        )?);
        let audit = Audit::open(&store)?;
        let sessions = Sessions::open(&store)?;
        let client = Arc::new(Client::new(ClientConfig {
            api_base,
            corp_id: cfg.wecom.corp_id.clone(),
            agent_id: cfg.wecom.agent_id,
            secret: cfg.wecom.secret.clone(),
            robot_webhook_key: cfg.wecom.robot_webhook_key.clone(),
            timeout: cfg.outbox.http_timeout,
        })?);
        let fetcher = Fetcher {
            max_bytes: cfg.tickets.max_image_bytes,
            bot_key: *MsgCrypt::new(
                cfg.wecom.bot.token.expose(),
                cfg.wecom.bot.encoding_aes_key.expose(),
                "",
            )?
            .aes_key(),
        };
        let kb = Arc::new(Kb::load(&cfg.paths.kb_dir)?);
        let accounts = Arc::new(Accounts::open(
            &store,
            cfg.console.session_ttl,
            cfg.console.login_attempts_per_minute,
        )?);
        let editor = Editor::open(
            &store,
            kb.clone(),
            scripts.clone(),
            &cfg.paths.kb_dir,
            &cfg.paths.scripts_dir,
        )?;
        let tools = crate::accounts::tools::Tools::open(&store)?;
        let names = NameLookups::new(tickets.clone(), client.clone());
        let engine = Arc::new(Engine {
            store: store.clone(),
            inbox: inbox.clone(),
            outbox: outbox.clone(),
            sessions,
            tickets: tickets.clone(),
            incidents: incidents.clone(),
            scripts: scripts.clone(),
            kb: kb.clone(),
            faq_log: faq_log.clone(),
            client: client.clone(),
            fetcher,
            names,
            settings: EngineSettings::from_config(&cfg),
        });
        Ok(Services {
            cfg,
            store,
            inbox,
            outbox,
            tickets,
            incidents,
            dashboard,
            weekly,
            audit,
            editor,
            tools,
            scripts,
            kb,
            faq_log,
            accounts,
            client,
            engine,
            storage: Arc::new(Health::default()),
        })
    }
}

/// Run the gateway (and, when `sim.enabled`, the simulator) on `listener` until `shutdown`.
///
/// When the database latched a failed write (sled fails every write after one failed, e.g.
/// on a full disk) and the disk takes writes again, the services stop in order and are
/// built again on a reopened database, on the same listener: the desk recovers by itself.
pub async fn run(cfg: Config, listener: TcpListener, shutdown: Shutdown) -> crate::Result<()> {
    let bound = listener.local_addr()?;
    let cfg = Arc::new(cfg);
    let listener = listener.into_std()?;
    loop {
        // Opening the store, loading the kb (jieba, tantivy) and hashing are blocking work.
        let (c, api_base, public_url) = (cfg.clone(), cfg.api_base(bound), cfg.public_url(bound));
        let build = tokio::task::spawn_blocking(move || Services::build(c, api_base, public_url));
        let services = Arc::new(build.await.map_err(std::io::Error::other)??);
        let round = TcpListener::from_std(listener.try_clone()?)?;
        let served = serve(services.clone(), round, shutdown.clone()).await;
        if !services.storage.reopen_requested() || shutdown.is_triggered() {
            return served;
        }
        if let Err(e) = served {
            tracing::warn!(error = %e, "stopping on a failing database");
        }
        drop(services);
        tracing::warn!("the disk takes writes again: reopening the database");
    }
}

/// How [`serve`] runs.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Run the background workers (conversation, outbox, sweepers). Off only to measure the
    /// callback path alone: messages are then stored and acknowledged but not processed
    /// until a later start.
    pub workers: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { workers: true }
    }
}

/// Serve already-built services on `listener` until `shutdown` (benchmarks keep a handle on
/// the services to read their counters).
pub async fn serve(
    services: Arc<Services>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> crate::Result<()> {
    serve_with(services, listener, shutdown, ServeOptions::default()).await
}

/// [`serve`] with explicit options.
pub async fn serve_with(
    services: Arc<Services>,
    listener: TcpListener,
    shutdown: Shutdown,
    options: ServeOptions,
) -> crate::Result<()> {
    let bound = listener.local_addr()?;
    let cfg = services.cfg.clone();
    let api_base = cfg.api_base(bound);
    // This round ends at shutdown, or when the database must be reopened.
    let (round, round_sd) = shutdown::channel();
    let forward = {
        let (mut outer, health) = (shutdown.clone(), services.storage.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = outer.wait() => {}
                () = health.reopen_wanted() => {}
            }
            round.trigger();
        })
    };

    let state = AppState::new(crate::http::Shared {
        cfg: cfg.clone(),
        inbox: services.inbox.clone(),
        app_crypt: Arc::new(MsgCrypt::new(
            cfg.wecom.app.token.expose(),
            cfg.wecom.app.encoding_aes_key.expose(),
            &cfg.wecom.corp_id,
        )?),
        bot_crypt: Arc::new(MsgCrypt::new(
            cfg.wecom.bot.token.expose(),
            cfg.wecom.bot.encoding_aes_key.expose(),
            "",
        )?),
        ready: Arc::new(AtomicBool::new(false)),
        storage: services.storage.clone(),
        tickets: services.tickets.clone(),
        incidents: services.incidents.clone(),
        dashboard: services.dashboard.clone(),
        weekly: services.weekly.clone(),
        audit: services.audit.clone(),
        editor: services.editor.clone(),
        tools: services.tools.clone(),
        presence: Default::default(),
        accounts: services.accounts.clone(),
        kb: services.kb.clone(),
        scripts: services.scripts.clone(),
        faq_log: services.faq_log.clone(),
        outbox: services.outbox.clone(),
        media: services.store.media().clone(),
        store: services.store.clone(),
        shutdown: round_sd.clone(),
    });
    if cfg.console.demo_accounts {
        let accounts = services.accounts.clone();
        tokio::task::spawn_blocking(move || create_demo_accounts(&accounts))
            .await
            .map_err(std::io::Error::other)??;
    }
    let ready = state.ready.clone();
    let mut router: Router = http::router(state);
    if cfg.sim.enabled {
        let local = format!("http://{}", loopback_for(bound));
        let sim = crate::sim::Sim::new(crate::sim::SimSettings::from_config(
            &cfg,
            local.clone(),
            format!("{local}/sim"),
        )?)?;
        router = crate::sim::mount(router, sim);
    }

    let workers = if options.workers {
        spawn_workers(&services, &round_sd)
    } else {
        tracing::warn!("background workers are off: messages are stored but not processed");
        Vec::new()
    };
    ready.store(true, Ordering::Release);
    announce(&cfg, bound, &api_base);

    let mut sd = round_sd.clone();
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { sd.wait().await })
    .await?;
    tracing::info!("HTTP stopped; stopping workers");
    join_workers(workers).await;
    forward.abort();
    let store = services.store.clone();
    tokio::task::spawn_blocking(move || store.flush_blocking())
        .await
        .map_err(std::io::Error::other)??;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Start every background worker under supervision; the handles resolve once each stopped.
fn spawn_workers(s: &Services, shutdown: &Shutdown) -> Vec<(&'static str, JoinHandle<()>)> {
    let (inbox, tickets, accounts, kb, scripts) = (
        s.inbox.clone(),
        s.tickets.clone(),
        s.accounts.clone(),
        s.kb.clone(),
        s.scripts.clone(),
    );
    let (dedupe_ttl, sla) = (s.cfg.storage.dedupe_ttl, s.cfg.sla.clone());
    let conversation = Arc::new(Worker::new(s.inbox.clone(), s.engine.clone()));
    let outbox = Arc::new(Deliverer::new(
        s.outbox.clone(),
        s.client.clone(),
        s.cfg.outbox.clone(),
    ));
    let dedupe = periodic("dedupe-sweeper", Duration::from_secs(3600), move || {
        let removed = inbox.sweep_dedupe(dedupe_ttl)?;
        if removed > 0 {
            tracing::info!(removed, "expired dedupe keys swept");
        }
        Ok(())
    });
    // SLA: announce overdue clocks once; sweep expired console sessions.
    let sla_watch = periodic("sla-watch", Duration::from_secs(30), move || {
        let announced = tickets.announce_overdue(&sla, crate::util::unix_millis())?;
        if announced > 0 {
            tracing::info!(announced, "overdue tickets announced");
        }
        accounts.sweep()?;
        Ok(())
    });
    // Incidents: 重大 by duration; resolve those whose alerts went silent.
    let incidents = s.incidents.clone();
    let incident_watch = periodic("incident-watch", Duration::from_secs(30), move || {
        let changed = incidents.sweep(crate::util::unix_millis())?;
        if changed > 0 {
            tracing::info!(changed, "incidents flagged or auto-resolved");
        }
        Ok(())
    });
    // The metrics recorder keeps histogram samples until they are drained: drain them
    // often (without this they grow with every request, and so does the cost of each).
    let metrics_upkeep = periodic("metrics-upkeep", Duration::from_secs(5), || {
        crate::telemetry::prometheus().run_upkeep();
        Ok(())
    });
    // The weekly report: sent once per week at its slot, or at the first check after it.
    let weekly = s.weekly.clone();
    let weekly_report = periodic("weekly-report", Duration::from_secs(30), move || {
        if let Some(week) = weekly.send_due(crate::util::unix_millis())? {
            tracing::info!(week, "weekly report sent to the handler group");
        }
        Ok(())
    });
    // Rebuild off the async threads, swap when done (console edits rebuild too, under the
    // same lock).
    let kb_reloader = periodic("kb-reloader", Duration::from_secs(2), move || {
        if let Some(r) = kb.reload_if_changed()? {
            for e in &r.errors {
                tracing::error!("knowledge base entry rejected: {e}");
            }
            tracing::info!(
                served = r.served,
                drafts = r.drafts,
                "knowledge base reloaded"
            );
        }
        Ok(())
    });
    // Storage: probe a write every second (and look at the inbox log); while writes fail
    // `/healthz` says so, and once the disk takes writes again a latched database or a
    // stopped inbox log is reopened (see `run`).
    let (store, health, inbox) = (s.store.clone(), s.storage.clone(), s.inbox.clone());
    let storage_watch = periodic("storage-watch", Duration::from_secs(1), move || {
        match store.probe().and_then(|()| inbox.check()) {
            Ok(()) => {
                if health.set_failing(false) {
                    tracing::info!("storage writes succeed again");
                }
            }
            Err(e) => {
                if !health.set_failing(true) {
                    tracing::error!(error = %e, "storage writes fail: callbacks get 503");
                }
                if store.disk_takes_writes() {
                    health.request_reopen();
                }
            }
        }
        Ok(())
    });
    let script_reloader = periodic("script-reloader", Duration::from_secs(2), move || {
        match scripts.reload_if_changed() {
            Ok(true) => tracing::info!("intake scripts reloaded"),
            Ok(false) => {}
            Err(e) => tracing::error!("intake scripts rejected; the running set stays:\n{e}"),
        }
        Ok(())
    });
    vec![
        start(conversation, shutdown),
        start(s.engine.names.clone(), shutdown),
        start(outbox, shutdown),
        start(dedupe, shutdown),
        start(sla_watch, shutdown),
        start(incident_watch, shutdown),
        start(weekly_report, shutdown),
        start(metrics_upkeep, shutdown),
        start(kb_reloader, shutdown),
        start(script_reloader, shutdown),
        start(storage_watch, shutdown),
    ]
}

fn start<W: crate::shutdown::Worker>(
    w: Arc<W>,
    shutdown: &Shutdown,
) -> (&'static str, JoinHandle<()>) {
    (w.name(), supervise(w, shutdown.clone()))
}

/// Wait for every worker to stop (10 s each at most), saying how each ended.
async fn join_workers(workers: Vec<(&'static str, JoinHandle<()>)>) {
    for (name, handle) in workers {
        match tokio::time::timeout(Duration::from_secs(10), handle).await {
            Ok(Ok(())) => tracing::debug!(worker = name, "joined"),
            Ok(Err(e)) => tracing::error!(worker = name, error = %e, "supervisor panicked"),
            Err(_) => tracing::error!(worker = name, "did not stop within 10 s"),
        }
    }
}

/// Demo mode: known accounts, so a new user can log in at once (logged at start-up).
/// Created only when missing, so a password changed since stays changed.
fn create_demo_accounts(accounts: &Accounts) -> crate::Result<()> {
    for (login, role, password) in [
        ("handler", Role::Handler, "handler-demo"),
        ("admin", Role::Admin, "admin-demo"),
    ] {
        match accounts.put_user(login, role, password, false) {
            Ok(_) | Err(AuthError::Exists) => {}
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(
        "console demo accounts: handler / handler-demo (处理人员), admin / admin-demo (管理员)"
    );
    Ok(())
}

fn announce(cfg: &Config, bound: SocketAddr, api_base: &str) {
    let base = format!("http://{}", loopback_for(bound));
    tracing::info!(listen = %bound, "gateway listening");
    tracing::info!(
        "WeCom callbacks: {base}/wecom/app/callback (app), {base}/wecom/bot/callback (AI bot)"
    );
    tracing::info!("handler console: {base}/console/");
    if cfg.sim.enabled {
        tracing::info!("WeCom simulator chat page: {base}/sim/");
    }
    tracing::info!(api_base, "WeCom server API");
}

/// Run the standalone simulator (`wecom-helpdesk sim`) until `shutdown`.
pub async fn run_sim(
    cfg: Config,
    listener: TcpListener,
    mut shutdown: Shutdown,
) -> crate::Result<()> {
    let bound = listener.local_addr()?;
    let public = format!("http://{}/sim", loopback_for(bound));
    let sim = crate::sim::Sim::new(crate::sim::SimSettings::from_config(
        &cfg,
        cfg.sim.gateway_url.clone(),
        public.clone(),
    )?)?;
    let router = crate::sim::mount(Router::new(), sim);
    tracing::info!(
        "WeCom simulator: chat page {public}/ ; server API base {public} ; callbacks go to {}",
        cfg.sim.gateway_url
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await?;
    Ok(())
}
