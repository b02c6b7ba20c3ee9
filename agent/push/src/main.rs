//! `nectr-agent-push`: the binary behind `nectr-agent push` and `nectr-agent fetch`
//! (`nectr-agent` executes it from its own directory). It can be run directly as
//! `nectr-agent-push push …` too.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use nectr_push::cli::{Cli, Command};
use nectr_push::manifest::Manifest;
use nectr_push::{fetch, push, Failure};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nectr-agent: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    let (name, manifest_path, result) = match cli.command {
        Command::Push(args) => {
            let m = args.common.manifest.clone();
            ("push", m, rt.block_on(push::run(args, &env)))
        }
        Command::Fetch(args) => {
            let m = args.common.manifest.clone();
            ("fetch", m, rt.block_on(fetch::run(args, &env)))
        }
    };
    // In-flight requests of a failed push are dropped here, not waited for.
    rt.shutdown_background();
    let (manifest, failure) = match result {
        Ok(m) => (Some(m), None),
        Err((f, m)) => (m, Some(f)),
    };
    let mut code = failure.as_ref().map_or(0, Failure::exit_code);
    if let Some(path) = &manifest_path {
        // A manifest is always written when asked for, so a stale one from an earlier run is
        // never taken for this run's.
        let m = manifest.unwrap_or_else(|| {
            let mut m = Manifest::new(name, "", None);
            m.ok = false;
            m.error = failure.as_ref().map(|f| f.message().to_string());
            m
        });
        if let Err(e) = write_manifest(&m, path) {
            eprintln!(
                "nectr-agent {name}: cannot write the manifest {}: {e}",
                path.display()
            );
            code = code.max(1);
        }
    }
    if let Some(f) = &failure {
        eprintln!("nectr-agent {name}: {}", f.message());
    }
    ExitCode::from(code)
}

fn write_manifest(m: &Manifest, path: &Path) -> std::io::Result<()> {
    m.write(path)
}
