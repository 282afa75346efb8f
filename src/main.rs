//! The `wecom-helpdesk` binary: parse the command line, load the config, start logging, and
//! hand over to the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use wecom_helpdesk::config::Config;
use wecom_helpdesk::{app, inbox, outbox, script, shutdown, store, telemetry};

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
    /// Inspect the outbox (run while the gateway is stopped).
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Inspect the inbox (run while the gateway is stopped).
    Inbox {
        #[command(subcommand)]
        action: InboxAction,
    },
    /// Intake scripts (bot-scripts/).
    Script {
        #[command(subcommand)]
        action: ScriptAction,
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
    // Checks that need no configuration run before it is loaded.
    if let Some(Command::Script {
        action: ScriptAction::Check { dir: Some(dir) },
    }) = &cli.command
    {
        return script_check(dir);
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
    }
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

fn open_store(cfg: &Config) -> anyhow::Result<store::Store> {
    store::Store::open(&cfg.storage.data_dir, cfg.storage.cache_capacity_bytes).with_context(|| {
        format!(
            "opening {} (is the gateway still running?)",
            cfg.storage.data_dir.display()
        )
    })
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
