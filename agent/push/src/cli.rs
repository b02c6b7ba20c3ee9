//! The command line of `nectr-agent push` and `nectr-agent fetch` (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The default key template: the build's job and number, then the file's path.
pub const DEFAULT_KEY: &str = "{JOB_NAME}/{BUILD_NUMBER}/{path}";

#[derive(Debug, Parser)]
#[command(
    name = "nectr-agent",
    bin_name = "nectr-agent",
    version,
    about = "Build artifacts to and from S3 (nectr-agent push / fetch)",
    after_help = "Exit status: 0 everything pushed (or already there) / fetched; 1 something \
                  failed (credentials, bucket, network, a file); 2 bad usage (nothing was sent)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upload files to S3 under keys made from the build's environment.
    #[command(after_help = PUSH_HELP)]
    Push(PushArgs),
    /// Download objects from S3.
    #[command(after_help = FETCH_HELP)]
    Fetch(FetchArgs),
}

const PUSH_HELP: &str = "\
Keys: the template's {NAME} is the environment variable NAME (an unset or empty one is an \
error), {path} the file's path relative to --base with / separators, {name} its file name, \
{{ and }} literal braces. Default: {JOB_NAME}/{BUILD_NUMBER}/{path}.

A file already in the bucket with the same size and SHA-256 (x-amz-meta-sha256) is not sent \
again. Files larger than --part-size-mib go as a multipart upload, --parallel parts at a time, \
each with its SHA-256 for S3 to verify; an upload that was interrupted is resumed by the next \
push of the same file to the same key from this machine (see --state-dir).

Credentials and region come from the standard AWS chain: the environment (AWS_ACCESS_KEY_ID, \
AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL …), ~/.aws, web identity, ECS, and on EC2 the \
instance role and region through IMDSv2.

Example (Jenkinsfile):  sh 'nectr-agent push --bucket nectr_deploy dist/*.tar.gz'";

const FETCH_HELP: &str = "\
A pattern is a key, or a glob over keys (* and ? stay within one /-separated level, ** spans \
levels, [abc] classes), after {NAME} expansion as in push. Each object is written to --to \
under its key's path below the pattern's fixed directory part: 'app/12/dist/*.tar.gz' writes \
DIR/a.tar.gz. A file is written under a temporary name and renamed only when complete and its \
SHA-256 (when the object carries one) matches.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise (a build log).
    Auto,
    /// Always a bar.
    Bar,
    /// Plain lines: one at each tenth of a file and one when it is done.
    Plain,
    /// Only errors and the summary.
    None,
}

/// Options both commands share.
#[derive(Debug, Args)]
pub struct Common {
    /// The bucket, e.g. nectr_deploy (names with underscores use path-style addressing)
    #[arg(short, long, env = "NECTR_PUSH_BUCKET")]
    pub bucket: Option<String>,
    /// Write a JSON manifest of every object to FILE (- for standard output)
    #[arg(short, long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Requests in flight at once (parts of a large file, or whole small files)
    #[arg(short = 'j', long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Attempts per request, with exponential backoff and jitter between them
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub retries: u32,
    /// Progress display
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// The AWS region (default: the standard chain: AWS_REGION, the profile, IMDS on EC2)
    #[arg(long)]
    pub region: Option<String>,
    /// Another S3 endpoint (default: AWS_ENDPOINT_URL, else AWS's); implies --path-style
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Address the bucket in the path (https://s3.REGION.amazonaws.com/BUCKET/KEY); automatic
    /// for names that are not valid host names (nectr_deploy) and with another endpoint
    #[arg(long)]
    pub path_style: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Files, directories (everything below them) or glob patterns (*, ?, **, [abc])
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// The key template
    #[arg(short, long, env = "NECTR_PUSH_KEY", default_value = DEFAULT_KEY, value_name = "TEMPLATE")]
    pub key: String,
    /// {path} is relative to this directory
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub base: PathBuf,
    /// Content-Type of every object (default: from each file's extension)
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// Part size of multipart uploads in MiB (5 to 5120); files up to this size go in one
    /// request. Grows by itself for files that would need more than 10,000 parts
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(5..=5120), value_name = "MIB")]
    pub part_size_mib: u64,
    /// Succeed with an empty manifest when no file matches (default: exit status 2)
    #[arg(long)]
    pub allow_empty: bool,
    /// Where the multipart uploads this machine started are remembered until they complete
    /// (default: $XDG_STATE_HOME/nectr-push, else ~/.local/state/nectr-push)
    #[arg(long, env = "NECTR_PUSH_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Keys or glob patterns over keys
    #[arg(required = true, value_name = "KEY-PATTERN")]
    pub patterns: Vec<String>,
    /// The directory to write into (created if missing)
    #[arg(short = 'o', long = "to", default_value = ".", value_name = "DIR")]
    pub to: PathBuf,
    #[command(flatten)]
    pub common: Common,
}
