//! `nectr-fleet run|plan|check --config FILE`, `nectr-fleet completions SHELL`

mod cli;

use clap::{CommandFactory, Parser};
use nectr_fleet::cloud::credentials::{credential_source, describe_source, Env, SharedCredentials};
use nectr_fleet::cloud::ec2::Ec2Provider;
use nectr_fleet::cloud::s3::S3Object;
use nectr_fleet::cloud::CloudProvider;
use nectr_fleet::config::{self, Config};
use nectr_fleet::lease::Lease;
use nectr_fleet::reconcile::Reconciler;
use nectr_fleet::scaler::Plan;
use nectr_fleet::server::{serve, Shared};
use nectr_fleet::{log, log_error, log_info, log_warn};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

struct Args {
    cmd: String,
    config: PathBuf,
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load_file(path).map_err(|e| {
        eprintln!("{e}");
        eprintln!(
            "{} problem(s) found; fix them and run `nectr-fleet check --config {}` again",
            e.errors.len(),
            path.display()
        );
        ExitCode::from(2)
    })
}

fn cloud_for(cfg: &Config, creds: SharedCredentials) -> Result<Arc<dyn CloudProvider>, String> {
    Ok(Arc::new(Ec2Provider::new(&cfg.aws, creds)?))
}

/// Where the AWS keys will come from, and a warning when no source is found. Contacts
/// nothing (no IMDS, no AWS).
fn describe_credentials(cfg: &Config) -> (String, Option<String>) {
    let (what, warning) = describe_source(&cfg.aws, &Env::process());
    (format!("aws credentials: {what}"), warning)
}

fn lease_for(
    cfg: &Config,
    l: &nectr_fleet::config::LeaseConfig,
    creds: SharedCredentials,
) -> Result<Lease, String> {
    let obj = S3Object::new(&cfg.aws, &l.bucket, &l.key, creds)?;
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    let id = format!(
        "{host}-{}-{}",
        std::process::id(),
        nectr_fleet::util::random_hex(4)
    );
    Ok(Lease::new(id, l.ttl_ms, Box::new(obj)))
}

/// SIGTERM and SIGINT set the returned flag (the loop finishes its step and stops) and
/// record which signal it was; a second one while stopping ends the process at once with
/// status 1.
fn stop_on_signals() -> std::io::Result<(Arc<AtomicBool>, Arc<AtomicUsize>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let which = Arc::new(AtomicUsize::new(0));
    for sig in [SIGTERM, SIGINT] {
        // Registration order is run order: the shutdown test sees the flag as the previous
        // signal left it.
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register_usize(sig, which.clone(), sig as usize)?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok((stop, which))
}

fn print_plan(p: &Plan) {
    println!("pools:");
    for (name, v) in &p.pools {
        println!(
            "  {name}: demand {} executor(s) (oldest waits {}s); idle {}, busy {}, connecting {}, in flight {}; {} instance(s), {} fenced; ${:.2}/h{}",
            v.demand_executors,
            v.oldest_wait_ms / 1000,
            v.idle_executors,
            v.busy_executors,
            v.connecting_executors,
            v.in_flight_executors,
            v.instances,
            v.fenced,
            v.dollars_per_hour,
            v.capped_by.as_ref().map(|c| format!("; capped by {c}")).unwrap_or_default()
        );
    }
    if !p.not_launchable.is_empty() {
        println!("waiting items nectr will not launch for:");
        for (r, n) in &p.not_launchable {
            println!("  {n} × {r}");
        }
    }
    println!("plan:");
    if p.is_empty() {
        println!("  nothing to do");
    }
    let mut groups: Vec<(&str, u32, Vec<String>, usize)> = Vec::new();
    for l in &p.launches {
        let offers: Vec<String> = l.offerings.iter().map(|o| o.to_string()).collect();
        match groups.last_mut() {
            Some(g) if g.0 == l.pool && g.1 == l.executors && g.2 == offers => g.3 += 1,
            _ => groups.push((l.pool.as_str(), l.executors, offers, 1)),
        }
    }
    for (pool, executors, offers, n) in groups {
        println!(
            "  launch {n} instance(s) for pool {pool} ({executors} executors each; offerings in order: {})",
            offers.join(", ")
        );
    }
    for a in &p.fences {
        println!("  fence node {} of pool {} ({})", a.node, a.pool, a.reason);
    }
    for a in &p.retires {
        println!(
            "  retire node {} and terminate {} ({})",
            a.node,
            a.instance.as_deref().unwrap_or("-"),
            a.reason
        );
    }
    for a in &p.lifts {
        println!("  lift the fence on {} ({})", a.node, a.reason);
    }
    for o in &p.orphan_instances {
        println!("  terminate orphan instance {} ({})", o.instance, o.reason);
    }
    for a in &p.orphan_nodes {
        println!("  delete orphan node {} ({})", a.node, a.reason);
    }
    for n in &p.notes {
        println!("note: {n}");
    }
}

fn main() -> ExitCode {
    let parsed = cli::Cli::parse();
    let (cmd, ca) = match parsed.command {
        cli::Command::Simulate { args } => return nectr_fleet::sim::cli::run(args),
        cli::Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut cli::Cli::command(),
                "nectr-fleet",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        ref c @ (cli::Command::Run(ref a)
        | cli::Command::Plan(ref a)
        | cli::Command::Check(ref a)) => (c.name(), a),
    };
    let Some(config_path) = ca.config.clone() else {
        eprintln!("error: `{cmd}` needs --config FILE\n\nFor more information, try '--help'.");
        return ExitCode::from(2);
    };
    log::set_level(match ca.log_level {
        cli::LogLevel::Error => log::Level::Error,
        cli::LogLevel::Warn => log::Level::Warn,
        cli::LogLevel::Info => log::Level::Info,
        cli::LogLevel::Debug => log::Level::Debug,
    });
    let args = Args {
        cmd: cmd.to_string(),
        config: config_path,
    };
    let cfg = match load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match args.cmd.as_str() {
        "check" => {
            if let Err(e) = cfg.read_jenkins_token() {
                eprintln!("{}: {e}", args.config.display());
                return ExitCode::from(2);
            }
            let (creds_line, creds_warning) = describe_credentials(&cfg);
            println!(
                "{}: OK: fleet {}, {} pool(s): {}",
                args.config.display(),
                cfg.fleet_id,
                cfg.pools.len(),
                cfg.pools
                    .iter()
                    .map(|p| format!(
                        "{} ({}..{} instances)",
                        p.name, p.min_instances, p.max_instances
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let now = nectr_fleet::util::now_ms();
            for p in &cfg.pools {
                let f = p.in_force(now);
                for (i, sc) in p.schedules.iter().enumerate() {
                    let state = match f.windows.iter().find(|(j, _)| *j == i) {
                        Some((_, w)) => format!(
                            "in force now, since {} until {}",
                            sc.local_time(w.start_ms),
                            sc.local_time(w.end_ms)
                        ),
                        None => match sc.next_window(now) {
                            Some(w) => format!("next from {}", sc.local_time(w.start_ms)),
                            None => "never starts".into(),
                        },
                    };
                    println!("pool {}: schedule {}; {state}", p.name, sc.describe());
                }
                if !p.schedules.is_empty() {
                    println!(
                        "pool {}: now min_instances {}, spare_executors {} (outside every window: {}, {})",
                        p.name, f.min_instances, f.spare_executors, p.min_instances, p.spare_executors
                    );
                }
            }
            println!("{creds_line}");
            if let Some(w) = creds_warning {
                eprintln!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        "plan" | "run" => {
            // One source for EC2 and the lease's S3 object: instance-role keys are fetched
            // and refreshed once for both.
            let creds = match credential_source(&cfg.aws) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let cloud = match cloud_for(&cfg, creds.clone()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let shared = Arc::new(Shared::default());
            shared.set_staleness_bound(nectr_fleet::server::staleness_bound(&cfg));
            let listen = cfg.listen;
            let lease = match (&cfg.lease, args.cmd.as_str()) {
                (Some(l), "run") => match lease_for(&cfg, l, creds.clone()) {
                    Ok(x) => Some(x),
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                },
                _ => None,
            };
            let mut rec =
                match Reconciler::new(cfg, Some(args.config.clone()), cloud, shared.clone()) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                };
            if let Some(l) = lease {
                log_info!("running as replica {} under the lease", l.id);
                rec = rec.with_lease(l);
            }
            if args.cmd == "plan" {
                // Progress on stderr, the plan on stdout: `plan > plan.txt` still shows
                // what it waits for.
                let mut rec = rec.with_progress(Box::new(|m| eprintln!("plan: {m}")));
                let r = rec.poll_once(false);
                for e in &r.errors {
                    eprintln!("error: {e}");
                }
                match r.plan {
                    Some(p) => {
                        print_plan(&p);
                        println!("(first observation: scale-in and orphan clean-up need the history of a running service, so `plan` never shows them)");
                        ExitCode::SUCCESS
                    }
                    None => ExitCode::from(1),
                }
            } else {
                if let Some(addr) = listen {
                    match serve(addr, shared) {
                        Ok(a) => log_info!("serving /metrics and /status on http://{a}/"),
                        Err(e) => {
                            log_error!(
                                "cannot listen on {addr}: {e}; change `listen` in the config"
                            );
                            return ExitCode::from(2);
                        }
                    }
                }
                log_info!(
                    "nectr-fleet {} starting: fleet {}",
                    env!("CARGO_PKG_VERSION"),
                    rec.config().fleet_id
                );
                let (stop, signal) = match stop_on_signals() {
                    Ok(x) => x,
                    Err(e) => {
                        log_error!("cannot install the SIGTERM/SIGINT handlers: {e}");
                        return ExitCode::from(2);
                    }
                };
                rec.run(stop);
                let name = match signal.load(Ordering::Relaxed) as i32 {
                    SIGINT => "SIGINT",
                    _ => "SIGTERM",
                };
                match rec.release_lease() {
                    None => log_info!("{name} received: stopped after the current step; exiting"),
                    Some((_, Ok(true))) => log_info!("{name} received: stopped after the current step; lease released, a standby takes over at its next poll; exiting"),
                    Some((_, Ok(false))) => log_info!("{name} received: stopped after the current step; the lease was not held, nothing to release; exiting"),
                    Some((_, Err(e))) => log_warn!("{name} received: stopped after the current step; releasing the lease failed ({e}), a standby takes over when it expires; exiting"),
                }
                ExitCode::SUCCESS
            }
        }
        _ => ExitCode::from(2),
    }
}
