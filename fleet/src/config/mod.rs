//! `fleet.toml`: parse, validate, diff.
//!
//! [`load`] turns text into a validated [`Config`] or a list of [`ConfigError`]s, each naming
//! the key (`pool[1].max_instances`, with the pool's name) and the line, and saying what to do.
//! [`diff`] lists what changed between two valid configs, and which changes need a restart.

mod raw;
pub mod schedule;
pub(crate) mod spans;

use crate::secret::Secret;
use crate::util::{format_duration_ms, parse_duration_ms};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use raw::{normalize_imds_endpoint, RawConfig};

/// Placeholders the user-data template may use.
pub const USER_DATA_PLACEHOLDERS: &[&str] = &[
    "jenkins_url",
    "node_name",
    "pool",
    "fleet_id",
    "executors",
    "remote_fs",
    "instance_type",
];

/// The default user-data: the non-secret settings the image's boot script reads, as
/// `KEY=VALUE` lines. The agent secret is never in user-data: the fleet stores it in SSM at
/// `/nectr/agents/<node>/secret` before the launch, and the boot script reads it with the
/// instance's role (see fleet/README.md, "The agent secret").
pub const DEFAULT_USER_DATA: &str = "NECTR_JENKINS_URL={{jenkins_url}}\n\
NECTR_NODE_NAME={{node_name}}\n\
NECTR_POOL={{pool}}\n\
NECTR_WEBSOCKET=true\n";

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub fleet_id: String,
    pub poll_interval_ms: u64,
    pub settle_interval_ms: u64,
    pub orphan_grace_ms: u64,
    pub listen: Option<SocketAddr>,
    pub max_instances: Option<u32>,
    pub max_dollars_per_hour: Option<f64>,
    pub jenkins: JenkinsConfig,
    pub aws: AwsConfig,
    /// Leader lease for running several replicas; `None` = a single replica.
    pub lease: Option<LeaseConfig>,
    pub pools: Vec<Pool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    pub bucket: String,
    pub key: String,
    pub ttl_ms: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JenkinsConfig {
    /// Always ends with `/`.
    pub url: String,
    pub user: String,
    pub token_file: PathBuf,
    pub timeout_ms: u64,
    /// After the controller restarts (a new `X-Jenkins-Session`), no node counts as idle for
    /// this long: a Pipeline resumed from disk re-queues its `node` block only once Jenkins
    /// has loaded it, and until then its node looks idle.
    pub restart_grace_ms: u64,
    /// Node names are `<node_prefix>-<pool>-<token>`.
    pub node_prefix: String,
    /// Extra CA certificates (PEM) to trust for Jenkins, besides the public roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AwsConfig {
    pub region: String,
    /// Endpoint override (tests: moto on 127.0.0.1). Without it, the regional EC2 endpoint.
    pub endpoint: Option<String>,
    /// File with two lines `ACCESS_KEY_ID` and `SECRET_ACCESS_KEY` (and optionally a third,
    /// the session token). Without it, the `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
    /// `AWS_SESSION_TOKEN` environment variables.
    pub credentials_file: Option<PathBuf>,
    /// `aws.credentials`: the SDK's standard chain, static keys (file or environment) or the
    /// EC2 instance role.
    pub credentials: CredentialsMode,
    /// `aws.profile`: the shared-config profile the standard chain uses (else `AWS_PROFILE`,
    /// else `default`). Only with [`CredentialsMode::Chain`].
    pub profile: Option<String>,
    /// `aws.imds_endpoint`, normalized to `http://host[:port]` (no trailing `/`). Used only
    /// with [`CredentialsMode::InstanceRole`]; `None` means `$AWS_EC2_METADATA_SERVICE_ENDPOINT`
    /// or `http://169.254.169.254`, decided when the credential source is built.
    pub imds_endpoint: Option<String>,
    pub timeout_ms: u64,
    /// Extra CA certificates (PEM) to trust for the AWS endpoints.
    pub ca_file: Option<PathBuf>,
}

/// Where the AWS keys come from (`aws.credentials`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CredentialsMode {
    /// `"chain"` (the default without `credentials_file`): the AWS SDK's standard chain:
    /// environment, shared config/credentials files (profiles, SSO, `credential_process`),
    /// web identity, the ECS container role, the EC2 instance role.
    #[default]
    Chain,
    /// `"static"`: `aws.credentials_file`, else `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
    /// `AWS_SESSION_TOKEN`, read once at start.
    Static,
    /// `"instance-role"`: the instance role's keys from IMDSv2, refreshed before they expire.
    InstanceRole,
}

impl CredentialsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialsMode::Chain => "chain",
            CredentialsMode::Static => "static",
            CredentialsMode::InstanceRole => "instance-role",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct InstanceType {
    pub name: String,
    /// Executors an instance of this type gets (its weight).
    pub executors: u32,
    /// On-demand dollars per hour: the configured `price`, else the bundled table's
    /// ([`crate::pricing::on_demand`] for `aws.region`); needed when `max_dollars_per_hour`
    /// is set.
    pub price: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    Ami(String),
    /// The newest image (by creation date) owned by this account with tag `key` = `value`.
    NewestTagged {
        key: String,
        value: String,
    },
    LaunchTemplate {
        id_or_name: String,
        version: String,
    },
    /// The image id held by an SSM parameter (`ami = { ssm = "/nectr/ami/agent" }`), as the
    /// image pipeline records each baked image (ami/Jenkinsfile).
    Parameter {
        name: String,
    },
    /// An Auto Scaling group's pool: the group's launch template or configuration says what
    /// its instances run.
    Group,
}

/// Who launches a pool's instances (`backend`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `"ec2"` (the default): the fleet calls `RunInstances` itself.
    Ec2,
    /// `"asg"`: an Auto Scaling group launches them; the fleet sets its desired capacity,
    /// adopts each instance it launches (node, secret, tags), protects busy ones from the
    /// group's scale-in and retires idle ones with `TerminateInstanceInAutoScalingGroup`.
    Asg { group: String },
}

impl Backend {
    pub fn group(&self) -> Option<&str> {
        match self {
            Backend::Ec2 => None,
            Backend::Asg { group } => Some(group),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purchase {
    OnDemand,
    Spot,
    SpotThenOnDemand,
}

impl Purchase {
    pub fn as_str(self) -> &'static str {
        match self {
            Purchase::OnDemand => "on-demand",
            Purchase::Spot => "spot",
            Purchase::SpotThenOnDemand => "spot-then-on-demand",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub name: String,
    pub backend: Backend,
    pub labels: BTreeSet<String>,
    pub executors: u32,
    pub instance_types: Vec<InstanceType>,
    pub image: ImageSource,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub instance_profile: Option<String>,
    pub purchase: Purchase,
    pub min_instances: u32,
    pub max_instances: u32,
    pub spare_executors: u32,
    pub idle_timeout_ms: u64,
    pub boot_deadline_ms: u64,
    pub user_data: String,
    pub remote_fs: String,
    pub tags: BTreeMap<String, String>,
    /// Assumed spot saving: a spot instance costs `price × (1 − spot_discount)`.
    pub spot_discount: f64,
    /// `rebalance = true`: a rebalance recommendation the instance reports (tag
    /// `nectr:rebalance`) fences and replaces it like an interruption notice.
    pub rebalance: bool,
    /// `[[pool.schedule]]`: `min_instances` / `spare_executors` by cron window
    /// ([`Pool::in_force`], [`Config::at`]).
    pub schedules: Vec<schedule::Schedule>,
}

impl Pool {
    pub fn instance_type(&self, name: &str) -> Option<&InstanceType> {
        self.instance_types.iter().find(|t| t.name == name)
    }

    /// Dollars per hour of one instance of `itype` (spot at the assumed discount); `None`
    /// when neither the config nor the bundled table prices it.
    pub fn hourly_price(&self, itype: &str, spot: bool) -> Option<f64> {
        let p = self.instance_type(itype)?.price?;
        Some(crate::pricing::hourly(p, spot, self.spot_discount))
    }
}

impl Config {
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// Read the Jenkins API token from `jenkins.token_file` (trailing whitespace trimmed).
    pub fn read_jenkins_token(&self) -> Result<Secret, String> {
        let path = &self.jenkins.token_file;
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "jenkins.token_file: cannot read {}: {e}; create it with the API token of user `{}`",
                path.display(),
                self.jenkins.user
            )
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(format!(
                "jenkins.token_file: {} is empty; put the API token of user `{}` in it",
                path.display(),
                self.jenkins.user
            ));
        }
        Ok(Secret::new(token))
    }
}

/// One problem in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The key path, e.g. `pool[1].max_instances` or `jenkins.url`.
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// All problems found in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match e.line {
                Some(l) => write!(f, "{}:{l}: {}: {}", self.file, e.key, e.message)?,
                None => write!(f, "{}: {}: {}", self.file, e.key, e.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Read and validate a file. Relative paths inside it (token file, credentials file,
/// user-data file) are resolved against the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConfigErrors {
        file: file.clone(),
        errors: vec![ConfigError {
            key: "(file)".into(),
            line: None,
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| ConfigErrors {
        file: file.clone(),
        errors: vec![spans::utf8_error(&bytes, &e)],
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_str(text, &base).map_err(|errors| ConfigErrors { file, errors })
}

/// Parse and validate `text`; `base` resolves relative paths. Errors name the key and the
/// line from the TOML parser's spans.
pub fn load_str(text: &str, base: &Path) -> Result<Config, Vec<ConfigError>> {
    let spans = spans::Spans::new(text);
    let raw: RawConfig = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) if spans.parsed() => return Err(vec![spans.deserialize_error(&e)]),
        Err(e) => return Err(vec![spans::syntax_error(text, &e)]),
    };
    raw::validate(raw, &spans, base)
}

/// One difference between the running config and a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    pub old: String,
    pub new: String,
    /// True if the change cannot be applied live (the running service rejects the edit).
    pub needs_restart: bool,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.key, self.old, self.new)?;
        if self.needs_restart {
            write!(f, " (needs a restart)")?;
        }
        Ok(())
    }
}

fn show_opt<T: fmt::Debug>(v: &Option<T>) -> String {
    match v {
        Some(x) => format!("{x:?}"),
        None => "(unset)".into(),
    }
}

/// What changed from `old` to `new`. Pools are matched by name. Keys that identify the fleet
/// (fleet id, Jenkins URL, AWS region and endpoint, listen address) and the AWS credential
/// keys (`credentials_file`, `credentials`, `profile`, `imds_endpoint`) need a restart; everything
/// else applies at the next poll, to new launches only (existing instances are drained, never
/// killed because of an edit).
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |key: &str, o: String, n: String, restart: bool| {
        if o != n {
            out.push(Change {
                key: key.into(),
                old: o,
                new: n,
                needs_restart: restart,
            });
        }
    };
    push("fleet_id", old.fleet_id.clone(), new.fleet_id.clone(), true);
    push(
        "jenkins.url",
        old.jenkins.url.clone(),
        new.jenkins.url.clone(),
        true,
    );
    push(
        "aws.region",
        old.aws.region.clone(),
        new.aws.region.clone(),
        true,
    );
    push(
        "aws.endpoint",
        show_opt(&old.aws.endpoint),
        show_opt(&new.aws.endpoint),
        true,
    );
    push("listen", show_opt(&old.listen), show_opt(&new.listen), true);
    push(
        "aws.credentials_file",
        show_opt(&old.aws.credentials_file),
        show_opt(&new.aws.credentials_file),
        true,
    );
    push(
        "aws.credentials",
        old.aws.credentials.as_str().into(),
        new.aws.credentials.as_str().into(),
        true,
    );
    push(
        "aws.profile",
        show_opt(&old.aws.profile),
        show_opt(&new.aws.profile),
        true,
    );
    push(
        "aws.imds_endpoint",
        show_opt(&old.aws.imds_endpoint),
        show_opt(&new.aws.imds_endpoint),
        true,
    );
    push(
        "lease",
        format!("{:?}", old.lease),
        format!("{:?}", new.lease),
        true,
    );
    push(
        "jenkins.ca_file",
        show_opt(&old.jenkins.ca_file),
        show_opt(&new.jenkins.ca_file),
        false,
    );
    push(
        "aws.ca_file",
        show_opt(&old.aws.ca_file),
        show_opt(&new.aws.ca_file),
        true,
    );
    push(
        "jenkins.user",
        old.jenkins.user.clone(),
        new.jenkins.user.clone(),
        false,
    );
    push(
        "jenkins.token_file",
        old.jenkins.token_file.display().to_string(),
        new.jenkins.token_file.display().to_string(),
        false,
    );
    push(
        "jenkins.node_prefix",
        old.jenkins.node_prefix.clone(),
        new.jenkins.node_prefix.clone(),
        true,
    );
    push(
        "jenkins.timeout",
        format_duration_ms(old.jenkins.timeout_ms),
        format_duration_ms(new.jenkins.timeout_ms),
        false,
    );
    push(
        "jenkins.restart_grace",
        format_duration_ms(old.jenkins.restart_grace_ms),
        format_duration_ms(new.jenkins.restart_grace_ms),
        false,
    );
    push(
        "aws.timeout",
        format_duration_ms(old.aws.timeout_ms),
        format_duration_ms(new.aws.timeout_ms),
        false,
    );
    push(
        "poll_interval",
        format_duration_ms(old.poll_interval_ms),
        format_duration_ms(new.poll_interval_ms),
        false,
    );
    push(
        "settle_interval",
        format_duration_ms(old.settle_interval_ms),
        format_duration_ms(new.settle_interval_ms),
        false,
    );
    push(
        "orphan_grace",
        format_duration_ms(old.orphan_grace_ms),
        format_duration_ms(new.orphan_grace_ms),
        false,
    );
    push(
        "max_instances",
        show_opt(&old.max_instances),
        show_opt(&new.max_instances),
        false,
    );
    push(
        "max_dollars_per_hour",
        show_opt(&old.max_dollars_per_hour),
        show_opt(&new.max_dollars_per_hour),
        false,
    );
    for p in &old.pools {
        if new.pool(&p.name).is_none() {
            push(
                &format!("pool {}", p.name),
                "present".into(),
                "removed (its instances are drained when idle)".into(),
                false,
            );
        }
    }
    for n in &new.pools {
        let Some(o) = old.pool(&n.name) else {
            push(
                &format!("pool {}", n.name),
                "absent".into(),
                "added".into(),
                false,
            );
            continue;
        };
        let k = |f: &str| format!("pool {}.{f}", n.name);
        push(
            &k("labels"),
            format!("{:?}", o.labels),
            format!("{:?}", n.labels),
            false,
        );
        push(
            &k("backend"),
            format!("{:?}", o.backend),
            format!("{:?}", n.backend),
            true,
        );
        push(
            &k("executors"),
            o.executors.to_string(),
            n.executors.to_string(),
            false,
        );
        push(
            &k("instance_types"),
            format!("{:?}", o.instance_types),
            format!("{:?}", n.instance_types),
            false,
        );
        push(
            &k("image"),
            format!("{:?}", o.image),
            format!("{:?}", n.image),
            false,
        );
        push(
            &k("subnets"),
            format!("{:?}", o.subnets),
            format!("{:?}", n.subnets),
            false,
        );
        push(
            &k("security_groups"),
            format!("{:?}", o.security_groups),
            format!("{:?}", n.security_groups),
            false,
        );
        push(
            &k("instance_profile"),
            show_opt(&o.instance_profile),
            show_opt(&n.instance_profile),
            false,
        );
        push(
            &k("purchase"),
            o.purchase.as_str().into(),
            n.purchase.as_str().into(),
            false,
        );
        push(
            &k("min_instances"),
            o.min_instances.to_string(),
            n.min_instances.to_string(),
            false,
        );
        push(
            &k("max_instances"),
            o.max_instances.to_string(),
            n.max_instances.to_string(),
            false,
        );
        push(
            &k("spare_executors"),
            o.spare_executors.to_string(),
            n.spare_executors.to_string(),
            false,
        );
        let schedules = |p: &Pool| {
            if p.schedules.is_empty() {
                "(none)".to_string()
            } else {
                p.schedules
                    .iter()
                    .map(|s| s.describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        };
        push(&k("schedule"), schedules(o), schedules(n), false);
        push(
            &k("idle_timeout"),
            format_duration_ms(o.idle_timeout_ms),
            format_duration_ms(n.idle_timeout_ms),
            false,
        );
        push(
            &k("boot_deadline"),
            format_duration_ms(o.boot_deadline_ms),
            format_duration_ms(n.boot_deadline_ms),
            false,
        );
        push(
            &k("spot_discount"),
            o.spot_discount.to_string(),
            n.spot_discount.to_string(),
            false,
        );
        if o.user_data != n.user_data {
            push(
                &k("user_data"),
                "(old template)".into(),
                "(new template)".into(),
                false,
            );
        }
        push(
            &k("remote_fs"),
            o.remote_fs.clone(),
            n.remote_fs.clone(),
            false,
        );
        push(
            &k("tags"),
            format!("{:?}", o.tags),
            format!("{:?}", n.tags),
            false,
        );
    }
    out
}

/// Render the user-data template. Unknown placeholders were rejected at validation.
pub fn render_user_data(template: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 128);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                match values.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push_str("{{");
                        out.push_str(&after[..end]);
                        out.push_str("}}");
                    }
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn duration_field(v: &raw::RawDuration) -> Result<u64, String> {
    match v {
        raw::RawDuration::Seconds(n) => {
            if *n < 0 {
                Err("must not be negative".into())
            } else {
                Ok((*n as u64).saturating_mul(1000))
            }
        }
        raw::RawDuration::Text(s) => parse_duration_ms(s),
    }
}

#[cfg(test)]
mod tests;
