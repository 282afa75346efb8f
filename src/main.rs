//! The `wecom-helpdesk` binary: parse the command line, load the config, start logging, and
//! hand over to the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use wecom_helpdesk::config::Config;
use wecom_helpdesk::{app, inbox, kb, outbox, script, shutdown, store, telemetry};

/// mimalloc instead of glibc's malloc: the callback path allocates per request on both
/// runtime threads, where glibc's arenas showed up in profiles (`benches/outside.rs`).
/// Built without transparent huge pages (`no_thp`): with them, every new 2 MiB region was
/// zeroed whole on first touch, 5% of the server's CPU under callback load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wecom-helpdesk",
    version,
    about = "An incident desk that lives inside WeCom"
)]
struct Cli {
    /// Configuration file (every key can be overridden as HELPDESK__SECTION__KEY).
    #[arg(long, short, default_value = "config.toml", env = "HELPDESK_CONFIG")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default); with sim.enabled also the WeCom simulator.
    Serve,
    /// Run only the WeCom simulator on sim.listen, posting callbacks to sim.gateway_url.
    Sim,
    /// Inspect the outbox (the gateway must be stopped; the console shows the same).
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Inspect the inbox (the gateway must be stopped).
    Inbox {
        #[command(subcommand)]
        action: InboxAction,
    },
    /// The FAQ knowledge base (kb/).
    Kb {
        #[command(subcommand)]
        action: KbAction,
    },
    /// Intake scripts (bot-scripts/).
    Script {
        #[command(subcommand)]
        action: ScriptAction,
    },
    /// Write a snapshot of the database and the media files into PATH (default: a new
    /// folder in storage.backup_dir). While the gateway runs, it asks the gateway
    /// (console.api_token needed), which writes into storage.backup_dir; the snapshot is
    /// then moved to PATH.
    Backup {
        /// Folder to create.
        path: Option<PathBuf>,
        /// The same as PATH (older spelling).
        #[arg(long, conflicts_with = "path")]
        to: Option<PathBuf>,
    },
    /// Restore a snapshot into storage.data_dir: with the gateway stopped, into a data
    /// directory that holds no database.
    Restore { from: PathBuf },
    /// Reports (the gateway must be stopped; the console's 报表 page shows the same).
    Report {
        #[command(subcommand)]
        action: ReportAction,
    },
    /// Console accounts (the gateway must be stopped; admins add accounts in the console).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum ReportAction {
    /// Print the weekly report (as the handler group gets it) and the figures as JSON.
    Weekly {
        /// The ISO week, e.g. 2026-W48 (default: last week).
        #[arg(long)]
        week: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create an account; the password is read from stdin (prompted for on a terminal).
    Add {
        login: String,
        #[arg(long, value_parser = ["handler", "admin"])]
        role: String,
        /// Replace the password and role of an existing account.
        #[arg(long)]
        reset: bool,
    },
    /// List the accounts.
    List,
}

#[derive(Subcommand)]
enum KbAction {
    /// Parse every entry of a folder; errors are printed as path:line: message.
    Check {
        #[arg(default_value = "kb")]
        dir: PathBuf,
    },
    /// Rank the entries for a question, with scores and the FAQ-first decision.
    Search {
        question: String,
        #[arg(long, default_value = "kb")]
        dir: PathBuf,
        #[arg(short, default_value_t = 5)]
        k: usize,
    },
    /// Serve the FAQ evaluation line protocol over a kb.jsonl (stdin/stdout).
    Eval {
        /// kb.jsonl to index (default: $FAQ_EVAL_KB).
        #[arg(long, env = "FAQ_EVAL_KB")]
        kb: PathBuf,
        /// Folder with dict.txt and synonyms.txt.
        #[arg(long, default_value = "kb")]
        resources: PathBuf,
    },
    /// Precision and coverage of the answer threshold over labelled queries.
    Calibrate {
        #[arg(long)]
        kb: PathBuf,
        #[arg(long)]
        queries: PathBuf,
        #[arg(long, default_value = "kb")]
        resources: PathBuf,
    },
    /// Hot questions, unanswered questions and the deflection rate from the query log
    /// (run while the gateway is stopped).
    Report {
        #[arg(long, default_value_t = 7)]
        days: i64,
    },
}

#[derive(Subcommand)]
enum ScriptAction {
    /// Validate every *.toml of a folder; errors are printed as path:line: message.
    Check {
        /// Folder to check (default: paths.scripts_dir).
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum OutboxAction {
    /// List messages that could not be delivered.
    Dead,
    /// List messages waiting for delivery.
    Pending,
    /// Put a dead message back in the queue.
    Retry { id: u64 },
}

#[derive(Subcommand)]
enum InboxAction {
    /// List inbound messages that failed processing repeatedly.
    Dead,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    // Commands that need no configuration run before it is loaded.
    match &cli.command {
        Some(Command::Script {
            action: ScriptAction::Check { dir: Some(dir) },
        }) => return script_check(dir),
        Some(Command::Kb { action }) if !matches!(action, KbAction::Report { .. }) => {
            return kb_cmd(action);
        }
        _ => {}
    }
    let cfg = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => runtime.block_on(serve(cfg)),
        Command::Sim => runtime.block_on(sim(cfg)),
        Command::Outbox { action } => outbox_cmd(&cfg, action),
        Command::Inbox { action } => inbox_cmd(&cfg, action),
        Command::Script {
            action: ScriptAction::Check { dir },
        } => script_check(&dir.unwrap_or_else(|| cfg.paths.scripts_dir.clone())),
        Command::Kb {
            action: KbAction::Report { days },
        } => kb_report(&cfg, days),
        Command::Kb { action } => kb_cmd(&action),
        Command::User { action } => user_cmd(&cfg, action),
        Command::Report {
            action: ReportAction::Weekly { week },
        } => report_weekly(&cfg, week.as_deref()),
        Command::Backup { path, to } => backup_cmd(&cfg, path.or(to), &runtime),
        Command::Restore { from } => {
            let report = store::Store::restore(
                &from,
                &cfg.storage.data_dir,
                cfg.storage.cache_capacity_bytes,
            )?;
            println!(
                "restored {} entries and {} media files into {}",
                report.entries,
                report.media_files,
                cfg.storage.data_dir.display()
            );
            Ok(())
        }
    }
}

/// A snapshot, taken directly when the gateway is stopped, else by the running gateway.
fn backup_cmd(
    cfg: &Config,
    to: Option<PathBuf>,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    match store::Store::open(&cfg.storage.data_dir, cfg.storage.cache_capacity_bytes) {
        Ok(store) => {
            let dir =
                to.unwrap_or_else(|| cfg.storage.backup_dir.join(store::Store::snapshot_name()));
            let r = store.snapshot(&dir)?;
            println!(
                "snapshot {}: {} entries, {} media files",
                dir.display(),
                r.entries,
                r.media_files
            );
            Ok(())
        }
        Err(store::Error::InUse(_)) => {
            if let Some(to) = &to {
                anyhow::ensure!(!to.exists(), "{} already exists", to.display());
            }
            let token = cfg.console.api_token.expose();
            anyhow::ensure!(
                !token.is_empty(),
                "the gateway is running: set console.api_token to back it up from the shell, \
                 or use POST /api/v1/admin/backup as an admin"
            );
            let url = format!(
                "http://{}/api/v1/admin/backup",
                wecom_helpdesk::config::loopback_for(cfg.server.listen)
            );
            let answer: serde_json::Value = runtime.block_on(async {
                let r = reqwest::Client::new()
                    .post(&url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .context("asking the running gateway for a snapshot")?;
                let status = r.status();
                let body: serde_json::Value = r.json().await.context("the gateway's answer")?;
                anyhow::ensure!(status.is_success(), "the gateway answered {status}: {body}");
                Ok(body)
            })?;
            let mut written = PathBuf::from(answer["path"].as_str().unwrap_or_default());
            if let Some(to) = to {
                // The gateway writes only into storage.backup_dir; the shell's user moves it.
                std::fs::rename(&written, &to).with_context(|| {
                    format!(
                        "the snapshot is in {}; moving it to {} failed (another file system? \
                         move it by hand)",
                        written.display(),
                        to.display()
                    )
                })?;
                written = to;
            }
            println!(
                "snapshot {} (by the running gateway): {} entries, {} media files",
                written.display(),
                answer["entries"],
                answer["media_files"]
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn user_cmd(cfg: &Config, action: UserAction) -> anyhow::Result<()> {
    use wecom_helpdesk::accounts::{Accounts, Role};
    let store = open_store(cfg)?;
    let accounts = Accounts::open(
        &store,
        cfg.console.session_ttl,
        cfg.console.login_attempts_per_minute,
    )?;
    match action {
        UserAction::Add { login, role, reset } => {
            let role = Role::parse(&role).context("role must be handler or admin")?;
            let password = read_password()?;
            accounts.put_user(&login, role, &password, reset)?;
            store.flush_blocking()?;
            println!("account {login} ({}) saved", role.label());
        }
        UserAction::List => {
            for u in accounts.users()? {
                let created = chrono::DateTime::from_timestamp_millis(u.created_at)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                println!("{}\t{:?}\t{created}", u.login, u.role);
            }
        }
    }
    Ok(())
}

/// One line from stdin; on a terminal, prompted for without echo.
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let stty = |arg: &str| {
        let _ = std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status();
    };
    if tty {
        eprint!("password: ");
        std::io::stderr().flush()?;
        stty("-echo");
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if tty {
        stty("echo");
        eprintln!();
    }
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn resources(dir: &std::path::Path) -> (String, String) {
    (
        std::fs::read_to_string(dir.join("dict.txt")).unwrap_or_default(),
        std::fs::read_to_string(dir.join("synonyms.txt")).unwrap_or_default(),
    )
}

fn kb_cmd(action: &KbAction) -> anyhow::Result<()> {
    match action {
        KbAction::Check { dir } => {
            let loaded =
                kb::entry::load_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
            let drafts = loaded.entries.iter().filter(|e| e.draft).count();
            println!(
                "{} entries ({} served, {} drafts), {} synonym groups, {} dictionary words",
                loaded.entries.len(),
                loaded.entries.len() - drafts,
                drafts,
                loaded
                    .synonyms
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                    .count(),
                loaded.dict.lines().filter(|l| !l.trim().is_empty()).count()
            );
            for e in &loaded.errors {
                eprintln!("{e}");
            }
            if !loaded.errors.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        KbAction::Search { question, dir, k } => {
            let loaded =
                kb::entry::load_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
            let index = kb::build(&loaded.entries, &loaded.dict, &loaded.synonyms)?;
            let hits = index.search(question, *k);
            for (i, h) in hits.iter().enumerate() {
                println!(
                    "{}. {:<24} score {:.3}  confidence {:.2}  {}",
                    i + 1,
                    h.entry.id,
                    h.score,
                    h.confidence,
                    h.entry.question
                );
            }
            if hits.is_empty() {
                println!("(no match)");
            }
            Ok(())
        }
        KbAction::Eval { kb, resources: res } => {
            let started = std::time::Instant::now();
            let entries = kb::entry::load_jsonl(kb)?;
            let (dict, synonyms) = resources(res);
            let index = kb::build(&entries, &dict, &synonyms)?;
            let stdin = std::io::stdin();
            kb::eval::serve(
                &index,
                started.elapsed().as_millis(),
                stdin.lock(),
                std::io::stdout().lock(),
            )?;
            Ok(())
        }
        KbAction::Calibrate {
            kb,
            queries,
            resources: res,
        } => {
            let entries = kb::entry::load_jsonl(kb)?;
            let (dict, synonyms) = resources(res);
            let index = kb::build(&entries, &dict, &synonyms)?;
            let queries = std::fs::read_to_string(queries)?;
            let thresholds: Vec<f32> = (0..=20).map(|i| i as f32 * 0.05).collect();
            println!("threshold  coverage  precision@1  in-top-3");
            for r in
                kb::eval::calibrate(&index, &queries, &thresholds).map_err(anyhow::Error::msg)?
            {
                println!(
                    "{:>9.2}  {:>8.3}  {:>11.3}  {:>8.3}",
                    r.threshold, r.coverage, r.precision, r.top3
                );
            }
            Ok(())
        }
        KbAction::Report { .. } => unreachable!("handled with a configuration"),
    }
}

fn kb_report(cfg: &Config, days: i64) -> anyhow::Result<()> {
    let store = open_store(cfg)?;
    let log = kb::log::FaqLog::open(&store)?;
    let since = wecom_helpdesk::util::unix_millis() - days * 24 * 3600 * 1000;
    let r = log.report(since, 10)?;
    println!("questions in the last {days} days: {}", r.questions);
    println!(
        "answered {}  suggested {}  no match {}  solved {}  unsolved {}  tickets {}",
        r.answered, r.suggested, r.no_match, r.solved, r.unsolved, r.tickets
    );
    println!("deflection rate: {:.1}%", r.deflection_rate() * 100.0);
    println!("hot entries:");
    let entries = kb::entry::load_dir(&cfg.paths.kb_dir)
        .map(|l| l.entries)
        .unwrap_or_default();
    for (id, n) in &r.hot {
        let question = entries.iter().find(|e| &e.id == id).map(|e| &e.question);
        println!("  {n:>5}  {}", question.unwrap_or(id));
    }
    println!("unanswered questions:");
    for (q, n) in &r.unanswered {
        println!("  {n:>5}  {q}");
    }
    Ok(())
}

fn script_check(dir: &std::path::Path) -> anyhow::Result<()> {
    match script::load_dir(dir) {
        Ok(set) => {
            for f in &set.flows {
                println!(
                    "ok  {}  flow `{}` ({}): {} steps, triggers: {}",
                    f.path,
                    f.id,
                    f.name,
                    f.steps.len(),
                    f.triggers.join(" ")
                );
            }
            Ok(())
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("binding server.listen = {}", cfg.server.listen))?;
    let (trigger, sd) = shutdown::channel();
    tokio::spawn(on_signal(trigger));
    app::run(cfg, listener, sd).await?;
    Ok(())
}

async fn sim(cfg: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.sim.listen)
        .await
        .with_context(|| format!("binding sim.listen = {}", cfg.sim.listen))?;
    let (trigger, sd) = shutdown::channel();
    tokio::spawn(on_signal(trigger));
    app::run_sim(cfg, listener, sd).await?;
    Ok(())
}

async fn on_signal(trigger: shutdown::Trigger) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    trigger.trigger();
}

/// Open the database for an operator command (refused, saying so, while a gateway runs on it).
fn open_store(cfg: &Config) -> anyhow::Result<store::Store> {
    Ok(store::Store::open(
        &cfg.storage.data_dir,
        cfg.storage.cache_capacity_bytes,
    )?)
}

fn report_weekly(cfg: &Config, week: Option<&str>) -> anyhow::Result<()> {
    use wecom_helpdesk::dashboard::{Dashboard, Period, weekly};
    let store = open_store(cfg)?;
    let outbox = outbox::Outbox::open(&store)?;
    let public_url = cfg.public_url(cfg.server.listen);
    let tickets = wecom_helpdesk::tickets::Tickets::open(
        &store,
        outbox.clone(),
        wecom_helpdesk::tickets::TicketSettings {
            prefix: cfg.tickets.number_prefix.clone(),
            utc_offset: cfg.utc_offset(),
            public_url: public_url.clone(),
            calendar: cfg.business_hours.clone(),
        },
    )?;
    let incidents = wecom_helpdesk::incidents::Incidents::open(
        &store,
        tickets.clone(),
        outbox,
        wecom_helpdesk::incidents::IncidentSettings {
            rules: cfg.incidents.clone(),
            utc_offset: cfg.utc_offset(),
            public_url: public_url.clone(),
        },
    )?;
    let dashboard = Dashboard {
        tickets,
        incidents,
        faq_log: wecom_helpdesk::kb::log::FaqLog::open(&store)?,
        sla: cfg.sla.clone(),
        utc_offset: cfg.utc_offset(),
    };
    let period = match week {
        Some(w) => Period::iso_week(w, cfg.utc_offset())?,
        None => Period::last_week(wecom_helpdesk::util::unix_millis(), cfg.utc_offset()),
    };
    let (cur, prev) = dashboard.summary_with_previous(&period)?;
    let link = format!(
        "{public_url}/console/reports?from={}&to={}",
        period.from, period.to
    );
    println!("{}", weekly::markdown(&period, &cur, &prev, &link));
    println!();
    println!("{}", serde_json::to_string_pretty(&cur)?);
    Ok(())
}

fn outbox_cmd(cfg: &Config, action: OutboxAction) -> anyhow::Result<()> {
    let store = open_store(cfg)?;
    let ob = outbox::Outbox::open(&store)?;
    let print = |jobs: Vec<outbox::Job>| {
        if jobs.is_empty() {
            println!("(none)");
        }
        for j in jobs {
            println!(
                "{}\t{}\t{}\tattempts={}\t{}\t{}",
                j.id,
                j.dest.lane(),
                j.msg.kind(),
                j.attempts,
                j.origin,
                j.last_error.unwrap_or_default()
            );
        }
    };
    match action {
        OutboxAction::Dead => print(ob.dead_letters()?),
        OutboxAction::Pending => print(ob.pending()?),
        OutboxAction::Retry { id } => {
            if ob.retry_dead(id)? {
                store.flush_blocking()?;
                println!("job {id} re-queued");
            } else {
                anyhow::bail!("no dead job {id}");
            }
        }
    }
    Ok(())
}

fn inbox_cmd(cfg: &Config, action: InboxAction) -> anyhow::Result<()> {
    let store = open_store(cfg)?;
    let ib = inbox::Inbox::open(&store)?;
    match action {
        InboxAction::Dead => {
            let dead = ib.dead_letters()?;
            if dead.is_empty() {
                println!("(none)");
            }
            for (seq, item) in dead {
                println!(
                    "{seq}\t{}\t{}\tfrom={}\tfailures={}",
                    item.inbound.channel.as_str(),
                    item.inbound.content.kind(),
                    item.inbound.sender,
                    item.failures
                );
            }
        }
    }
    Ok(())
}
