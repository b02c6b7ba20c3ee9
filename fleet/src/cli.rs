//! The command line of `nectr-fleet` (clap derive). Parsing only; `main.rs` runs the commands.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// nectr-fleet: runs Jenkins agents on short-lived EC2 instances.
///
/// The config file is documented in fleet/README.md.
#[derive(Parser, Debug)]
#[command(name = "nectr-fleet", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The service: polls, decides and acts; serves /, /status, /metrics and /healthz on `listen`
    Run(ConfigArgs),
    /// One observation; prints the plan, changes nothing
    Plan(ConfigArgs),
    /// Validates the file (and the token file); says where AWS credentials will come from
    Check(ConfigArgs),
    /// Replays a workload through decide and the alternatives (`simulate --help` for its options)
    #[command(disable_help_flag = true)]
    Simulate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Prints a shell completion script to stdout (e.g. `nectr-fleet completions bash >
    /// /etc/bash_completion.d/nectr-fleet`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// The fleet's TOML config file
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Least severe log level written to stderr
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Run(_) => "run",
            Command::Plan(_) => "plan",
            Command::Check(_) => "check",
            Command::Completions { .. } => "completions",
            Command::Simulate { .. } => "simulate",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
