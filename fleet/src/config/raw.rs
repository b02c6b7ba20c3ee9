//! The file as serde sees it, and the validation that turns it into a [`Config`].

use super::schedule::{self, Schedule};
use super::{
    duration_field, spans::Spans, AwsConfig, Backend, Config, ConfigError, CredentialsMode,
    ImageSource, InstanceType, JenkinsConfig, LeaseConfig, Pool, Purchase, DEFAULT_USER_DATA,
    USER_DATA_PLACEHOLDERS,
};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum RawDuration {
    Seconds(i64),
    Text(String),
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub fleet_id: String,
    pub poll_interval: Option<RawDuration>,
    pub settle_interval: Option<RawDuration>,
    pub orphan_grace: Option<RawDuration>,
    pub listen: Option<String>,
    pub max_instances: Option<i64>,
    pub max_dollars_per_hour: Option<f64>,
    pub jenkins: RawJenkins,
    pub aws: RawAws,
    pub lease: Option<RawLease>,
    #[serde(default, rename = "pool")]
    pub pools: Vec<RawPool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawLease {
    pub bucket: String,
    pub key: Option<String>,
    pub ttl: Option<RawDuration>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawJenkins {
    pub url: String,
    pub user: String,
    pub token_file: String,
    pub timeout: Option<RawDuration>,
    pub restart_grace: Option<RawDuration>,
    pub node_prefix: Option<String>,
    pub ca_file: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    pub region: String,
    pub endpoint: Option<String>,
    pub credentials_file: Option<String>,
    pub credentials: Option<String>,
    pub profile: Option<String>,
    pub imds_endpoint: Option<String>,
    pub timeout: Option<RawDuration>,
    pub ca_file: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum RawInstanceType {
    Name(String),
    Full {
        #[serde(rename = "type")]
        name: String,
        executors: Option<i64>,
        price: Option<f64>,
    },
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawAmiTag {
    pub tag: String,
    pub value: String,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum RawAmi {
    Id(String),
    Tagged(RawAmiTag),
    Parameter(RawAmiParameter),
}

/// `ami = { ssm = "/nectr/ami/agent" }`: the image id recorded in an SSM parameter.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawAmiParameter {
    pub ssm: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawLaunchTemplate {
    pub id: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub name: String,
    pub backend: Option<String>,
    pub group: Option<String>,
    pub labels: Vec<String>,
    pub executors: Option<i64>,
    pub instance_types: Vec<RawInstanceType>,
    pub ami: Option<RawAmi>,
    pub launch_template: Option<RawLaunchTemplate>,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    pub instance_profile: Option<String>,
    pub purchase: Option<String>,
    pub min_instances: Option<i64>,
    pub max_instances: i64,
    pub spare_executors: Option<i64>,
    pub idle_timeout: Option<RawDuration>,
    pub boot_deadline: Option<RawDuration>,
    pub user_data: Option<String>,
    pub user_data_file: Option<String>,
    pub remote_fs: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Assumed spot saving (0 to 0.95) used to price spot instances from the on-demand price.
    pub spot_discount: Option<f64>,
    /// Act on rebalance recommendations as on interruption notices.
    #[serde(default)]
    pub rebalance: bool,
    #[serde(default)]
    pub schedule: Vec<RawSchedule>,
}

/// `[[pool.schedule]]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub cron: String,
    pub duration: RawDuration,
    pub timezone: String,
    pub min_instances: Option<i64>,
    pub spare_executors: Option<i64>,
}

struct Ctx<'a> {
    spans: &'a Spans<'a>,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    fn err(
        &mut self,
        table: &str,
        index: Option<usize>,
        key: &str,
        pool_name: Option<&str>,
        msg: String,
    ) {
        let line = self.spans.line(table, index, key);
        let path = match (table, index) {
            ("", _) => key.to_string(),
            (t, Some(i)) => match pool_name {
                Some(n) => format!("{t}[{i}] (name \"{n}\").{key}"),
                None => format!("{t}[{i}].{key}"),
            },
            (t, None) => format!("{t}.{key}"),
        };
        self.errors.push(ConfigError {
            key: path,
            line,
            message: msg,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn duration(
        &mut self,
        table: &str,
        index: Option<usize>,
        key: &str,
        pool: Option<&str>,
        v: &Option<RawDuration>,
        default_ms: u64,
        min_ms: u64,
        max_ms: u64,
    ) -> u64 {
        let Some(v) = v else { return default_ms };
        match duration_field(v) {
            Ok(ms) if ms < min_ms || ms > max_ms => {
                self.err(
                    table,
                    index,
                    key,
                    pool,
                    format!(
                        "{} is out of range: use a value between {} and {}",
                        crate::util::format_duration_ms(ms),
                        crate::util::format_duration_ms(min_ms),
                        crate::util::format_duration_ms(max_ms)
                    ),
                );
                default_ms
            }
            Ok(ms) => ms,
            Err(e) => {
                self.err(table, index, key, pool, e);
                default_ms
            }
        }
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
}

/// A label atom as Jenkins would accept it unquoted in a node's label string.
fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || "&|!<>()\"'".contains(c))
}

fn check_url(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!(
            "`{s}` is not an http(s) URL: write it like \"https://ci.example.com/\""
        ));
    }
    let rest = &s[s.find("://").map_or(0, |i| i + 3)..];
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{s}` has no host name"));
    }
    if s.contains(char::is_whitespace) || s.contains('?') || s.contains('#') {
        return Err(format!("`{s}` must not contain spaces, `?` or `#`"));
    }
    Ok(if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    })
}

pub(super) fn validate(
    raw: RawConfig,
    spans: &Spans<'_>,
    base: &Path,
) -> Result<Config, Vec<ConfigError>> {
    let mut c = Ctx {
        spans,
        errors: Vec::new(),
    };

    if !valid_name(&raw.fleet_id, 32) {
        c.err(
            "",
            None,
            "fleet_id",
            None,
            format!(
                "`{}` is not a valid fleet id: use 1 to 32 lowercase letters, digits and `-`, starting with a letter",
                raw.fleet_id
            ),
        );
    }
    let poll_interval_ms = c.duration(
        "",
        None,
        "poll_interval",
        None,
        &raw.poll_interval,
        5_000,
        500,
        600_000,
    );
    let settle_interval_ms = c.duration(
        "",
        None,
        "settle_interval",
        None,
        &raw.settle_interval,
        10_000,
        0,
        600_000,
    );
    let orphan_grace_ms = c.duration(
        "",
        None,
        "orphan_grace",
        None,
        &raw.orphan_grace,
        60_000,
        0,
        86_400_000,
    );
    let listen = match &raw.listen {
        None => None,
        Some(s) => match s.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                c.err(
                    "",
                    None,
                    "listen",
                    None,
                    format!("`{s}` is not an address:port: write it like \"127.0.0.1:9400\""),
                );
                None
            }
        },
    };
    let max_instances = match raw.max_instances {
        None => None,
        Some(n) if (0..=100_000).contains(&n) => Some(n as u32),
        Some(n) => {
            c.err(
                "",
                None,
                "max_instances",
                None,
                format!("{n} is out of range: use 0 to 100000"),
            );
            None
        }
    };
    let max_dollars_per_hour = match raw.max_dollars_per_hour {
        Some(d) if !(d.is_finite() && d >= 0.0) => {
            c.err(
                "",
                None,
                "max_dollars_per_hour",
                None,
                format!("{d} is not a valid amount: use a number >= 0"),
            );
            None
        }
        d => d,
    };

    // [jenkins]
    let url = match check_url(raw.jenkins.url.trim()) {
        Ok(u) => u,
        Err(e) => {
            c.err("jenkins", None, "url", None, e);
            String::new()
        }
    };
    if raw.jenkins.user.trim().is_empty() {
        c.err(
            "jenkins",
            None,
            "user",
            None,
            "is empty: set the Jenkins user whose API token is in token_file".into(),
        );
    }
    if raw.jenkins.token_file.trim().is_empty() {
        c.err(
            "jenkins",
            None,
            "token_file",
            None,
            "is empty: set the path of a file holding the API token".into(),
        );
    }
    let node_prefix = raw
        .jenkins
        .node_prefix
        .clone()
        .unwrap_or_else(|| "nectr".into());
    if !valid_name(&node_prefix, 20) {
        c.err(
            "jenkins",
            None,
            "node_prefix",
            None,
            format!("`{node_prefix}` is not valid: use 1 to 20 lowercase letters, digits and `-`, starting with a letter"),
        );
    }
    let jenkins_timeout = c.duration(
        "jenkins",
        None,
        "timeout",
        None,
        &raw.jenkins.timeout,
        10_000,
        500,
        300_000,
    );
    let restart_grace = c.duration(
        "jenkins",
        None,
        "restart_grace",
        None,
        &raw.jenkins.restart_grace,
        120_000,
        0,
        3_600_000,
    );
    let jenkins_ca = ca_file(&mut c, "jenkins", raw.jenkins.ca_file.as_deref(), base);
    let jenkins = JenkinsConfig {
        url,
        user: raw.jenkins.user.trim().to_string(),
        token_file: resolve(base, raw.jenkins.token_file.trim()),
        timeout_ms: jenkins_timeout,
        restart_grace_ms: restart_grace,
        node_prefix,
        ca_file: jenkins_ca,
    };

    // [aws]
    let region_ok = !raw.aws.region.is_empty()
        && raw
            .aws
            .region
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
    if !region_ok {
        c.err(
            "aws",
            None,
            "region",
            None,
            format!(
                "`{}` is not a region name: write it like \"us-east-1\"",
                raw.aws.region
            ),
        );
    }
    let endpoint = match &raw.aws.endpoint {
        None => None,
        Some(e) => match check_url(e.trim()) {
            Ok(u) => Some(u),
            Err(m) => {
                c.err("aws", None, "endpoint", None, m);
                None
            }
        },
    };
    let aws_timeout = c.duration(
        "aws",
        None,
        "timeout",
        None,
        &raw.aws.timeout,
        20_000,
        500,
        300_000,
    );
    let credentials = match raw.aws.credentials.as_deref().map(str::trim) {
        None if raw.aws.credentials_file.is_some() => CredentialsMode::Static,
        None | Some("chain") => CredentialsMode::Chain,
        Some("static") => CredentialsMode::Static,
        Some("instance-role") => CredentialsMode::InstanceRole,
        Some(o) => {
            c.err(
                "aws",
                None,
                "credentials",
                None,
                format!("`{o}` is not a credential source: use \"chain\" (the AWS SDK's standard chain: environment, profiles, SSO, web identity, container and instance roles), \"static\" (aws.credentials_file or the AWS_* environment variables) or \"instance-role\" (the EC2 instance role, from the instance metadata service)"),
            );
            CredentialsMode::Chain
        }
    };
    if credentials == CredentialsMode::Chain && raw.aws.credentials_file.is_some() {
        c.err(
            "aws",
            None,
            "credentials",
            None,
            "\"chain\" and aws.credentials_file are both set: the chain reads the environment and the shared files itself, so remove credentials_file, or set credentials = \"static\" to use the file".into(),
        );
    }
    let profile = match raw.aws.profile.as_deref().map(str::trim) {
        None => None,
        Some(p) if credentials != CredentialsMode::Chain => {
            c.err(
                "aws",
                None,
                "profile",
                None,
                format!("is set (`{p}`), but aws.credentials is not \"chain\": profiles are read only by the standard chain; remove profile or remove the credentials key"),
            );
            None
        }
        Some(p)
            if p.is_empty()
                || !p
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.@+=,".contains(ch)) =>
        {
            c.err(
                "aws",
                None,
                "profile",
                None,
                format!("`{p}` is not a profile name: write the name of a [profile NAME] section of ~/.aws/config, like \"ci\""),
            );
            None
        }
        Some(p) => Some(p.to_string()),
    };
    if credentials == CredentialsMode::InstanceRole && raw.aws.credentials_file.is_some() {
        c.err(
            "aws",
            None,
            "credentials",
            None,
            "\"instance-role\" and aws.credentials_file are both set: the instance role's keys come from the metadata service, so remove credentials_file, or set credentials = \"static\" to use the file".into(),
        );
    }
    let imds_endpoint = match &raw.aws.imds_endpoint {
        None => None,
        Some(e) => match normalize_imds_endpoint(e.trim()) {
            Ok(u) => {
                if credentials != CredentialsMode::InstanceRole {
                    c.err(
                        "aws",
                        None,
                        "imds_endpoint",
                        None,
                        "is set, but aws.credentials is not \"instance-role\": the metadata service is only contacted for instance-role credentials; set credentials = \"instance-role\" or remove imds_endpoint".into(),
                    );
                }
                Some(u)
            }
            Err(m) => {
                c.err("aws", None, "imds_endpoint", None, m);
                None
            }
        },
    };
    let aws = AwsConfig {
        region: raw.aws.region.clone(),
        endpoint,
        credentials_file: raw
            .aws
            .credentials_file
            .as_deref()
            .map(|p| resolve(base, p)),
        credentials,
        profile,
        imds_endpoint,
        timeout_ms: aws_timeout,
        ca_file: ca_file(&mut c, "aws", raw.aws.ca_file.as_deref(), base),
    };

    // [lease]
    let lease = raw.lease.as_ref().map(|l| {
        let b = &l.bucket;
        let ok = (3..=63).contains(&b.len())
            && b.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '.')
            && !b.starts_with(['-', '.'])
            && !b.ends_with(['-', '.']);
        if !ok {
            c.err("lease", None, "bucket", None, format!("`{b}` is not an S3 bucket name: 3 to 63 lowercase letters, digits, `-` and `.`"));
        }
        let key = l.key.clone().unwrap_or_else(|| format!("{}/lease.json", raw.fleet_id));
        if key.is_empty() || key.starts_with('/') {
            c.err("lease", None, "key", None, format!("`{key}` is not an object key: no leading `/`"));
        }
        let min = poll_interval_ms.saturating_mul(3);
        let ttl_ms = c.duration("lease", None, "ttl", None, &l.ttl, 30_000.max(min), 1_000, 600_000);
        if ttl_ms < min {
            c.err("lease", None, "ttl", None, format!("{} is shorter than 3 poll intervals ({}): the leader must renew at least twice per lease", crate::util::format_duration_ms(ttl_ms), crate::util::format_duration_ms(min)));
        }
        LeaseConfig { bucket: b.clone(), key, ttl_ms }
    });

    // [[pool]]
    if raw.pools.is_empty() {
        c.err(
            "",
            None,
            "pool",
            None,
            "no pools: add at least one [[pool]] table".into(),
        );
    }
    let mut names = BTreeSet::new();
    let mut pools = Vec::new();
    let region = raw.aws.region.clone();
    for (i, rp) in raw.pools.into_iter().enumerate() {
        let need_price = max_dollars_per_hour.is_some();
        if let Some(p) = validate_pool(&mut c, i, rp, base, need_price, &region) {
            if !names.insert(p.name.clone()) {
                c.err(
                    "pool",
                    Some(i),
                    "name",
                    Some(&p.name),
                    format!(
                        "pool name `{}` is used twice: pool names must be unique",
                        p.name
                    ),
                );
            }
            pools.push(p);
        }
    }

    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    Ok(Config {
        fleet_id: raw.fleet_id,
        poll_interval_ms,
        settle_interval_ms,
        orphan_grace_ms,
        listen,
        max_instances,
        max_dollars_per_hour,
        jenkins,
        aws,
        lease,
        pools,
    })
}

fn validate_pool(
    c: &mut Ctx<'_>,
    i: usize,
    rp: RawPool,
    base: &Path,
    need_price: bool,
    region: &str,
) -> Option<Pool> {
    let before = c.errors.len();
    let name = rp.name.clone();
    let n = Some(name.as_str());
    if !valid_name(&name, 24) {
        c.err("pool", Some(i), "name", n, format!("`{name}` is not a valid pool name: use 1 to 24 lowercase letters, digits and `-`, starting with a letter"));
    }
    let mut labels = BTreeSet::new();
    if rp.labels.is_empty() {
        c.err(
            "pool",
            Some(i),
            "labels",
            n,
            "is empty: list the labels its nodes carry, e.g. [\"linux\", \"c5\"]".into(),
        );
    }
    for l in &rp.labels {
        if !valid_label(l) {
            c.err(
                "pool",
                Some(i),
                "labels",
                n,
                format!("`{l}` is not a label atom: no spaces, quotes or any of & | ! < > ( )"),
            );
        } else {
            labels.insert(l.clone());
        }
    }
    let executors = match rp.executors {
        None => 1,
        Some(e) if (1..=256).contains(&e) => e as u32,
        Some(e) => {
            c.err(
                "pool",
                Some(i),
                "executors",
                n,
                format!("{e} is out of range: use 1 to 256"),
            );
            1
        }
    };
    let mut types = Vec::new();
    if rp.instance_types.is_empty() {
        c.err(
            "pool",
            Some(i),
            "instance_types",
            n,
            "is empty: list at least one instance type, e.g. [\"c5.9xlarge\"]".into(),
        );
    }
    let mut seen = BTreeSet::new();
    for t in rp.instance_types {
        let (tname, tex, price) = match t {
            RawInstanceType::Name(s) => (s, None, None),
            RawInstanceType::Full {
                name,
                executors,
                price,
            } => (name, executors, price),
        };
        if tname.is_empty() || !tname.contains('.') || tname.contains(char::is_whitespace) {
            c.err(
                "pool",
                Some(i),
                "instance_types",
                n,
                format!("`{tname}` is not an instance type: write it like \"c5.9xlarge\""),
            );
            continue;
        }
        if !seen.insert(tname.clone()) {
            c.err(
                "pool",
                Some(i),
                "instance_types",
                n,
                format!("`{tname}` is listed twice"),
            );
        }
        let tex = match tex {
            None => executors,
            Some(e) if (1..=256).contains(&e) => e as u32,
            Some(e) => {
                c.err(
                    "pool",
                    Some(i),
                    "instance_types",
                    n,
                    format!("`{tname}`: executors {e} is out of range: use 1 to 256"),
                );
                executors
            }
        };
        if let Some(p) = price {
            if !(p.is_finite() && p >= 0.0) {
                c.err(
                    "pool",
                    Some(i),
                    "instance_types",
                    n,
                    format!("`{tname}`: price {p} is not a valid amount"),
                );
            }
        }
        // Without a price, the bundled on-demand table (crate::pricing) for the region.
        let price = price.or_else(|| crate::pricing::on_demand(region, &tname));
        if price.is_none() && need_price {
            c.err("pool", Some(i), "instance_types", n, format!("`{tname}` has no price and the bundled table has none for {region}, but max_dollars_per_hour is set: write {{ type = \"{tname}\", price = 1.53 }} (on-demand dollars per hour)"));
        }
        types.push(InstanceType {
            name: tname,
            executors: tex,
            price,
        });
    }
    let backend = match (rp.backend.as_deref(), rp.group) {
        (None | Some("ec2"), None) => Backend::Ec2,
        (None | Some("ec2"), Some(_)) => {
            c.err(
                "pool",
                Some(i),
                "group",
                n,
                "is only for backend = \"asg\": add it, or remove group".into(),
            );
            Backend::Ec2
        }
        (Some("asg"), Some(g)) => {
            let ok = !g.is_empty() && g.len() <= 255 && !g.chars().any(|ch| ch.is_control());
            if !ok {
                c.err(
                    "pool",
                    Some(i),
                    "group",
                    n,
                    format!(
                        "`{}` is not an Auto Scaling group name (1 to 255 printable characters)",
                        g.chars().take(80).collect::<String>()
                    ),
                );
            }
            Backend::Asg { group: g }
        }
        (Some("asg"), None) => {
            c.err(
                "pool",
                Some(i),
                "backend",
                n,
                "backend = \"asg\" needs the group's name: add group = \"nectr-linux\"".into(),
            );
            Backend::Ec2
        }
        (Some(other), _) => {
            c.err("pool", Some(i), "backend", n, format!("`{}` is not a backend: use \"ec2\" (the fleet launches instances) or \"asg\" (an Auto Scaling group does)", other.chars().take(40).collect::<String>()));
            Backend::Ec2
        }
    };
    let image = match (rp.ami, rp.launch_template) {
        (ami, lt) if backend != Backend::Ec2 => {
            if ami.is_some() || lt.is_some() {
                c.err("pool", Some(i), if ami.is_some() { "ami" } else { "launch_template" }, n, "an Auto Scaling group's pool takes its image from the group's launch template: remove it".into());
            }
            Some(ImageSource::Group)
        }
        (Some(_), Some(_)) => {
            c.err(
                "pool",
                Some(i),
                "launch_template",
                n,
                "both ami and launch_template are set: keep one".into(),
            );
            None
        }
        (None, None) => {
            c.err("pool", Some(i), "ami", n, "no image: set ami = \"ami-...\", ami = { tag = \"K\", value = \"V\" }, ami = { ssm = \"/nectr/ami/agent\" } or launch_template = { id = \"lt-...\" }".into());
            None
        }
        (Some(RawAmi::Id(id)), None) => {
            if !id.starts_with("ami-") {
                c.err(
                    "pool",
                    Some(i),
                    "ami",
                    n,
                    format!("`{id}` is not an AMI id (ami-...)"),
                );
            }
            Some(ImageSource::Ami(id))
        }
        (Some(RawAmi::Tagged(t)), None) => {
            if t.tag.is_empty() {
                c.err("pool", Some(i), "ami", n, "tag is empty".into());
            }
            Some(ImageSource::NewestTagged {
                key: t.tag,
                value: t.value,
            })
        }
        (Some(RawAmi::Parameter(p)), None) => {
            if let Err(e) = check_ssm_parameter_name(&p.ssm) {
                c.err("pool", Some(i), "ami", n, e);
            }
            Some(ImageSource::Parameter { name: p.ssm })
        }
        (None, Some(lt)) => match (lt.id, lt.name) {
            (Some(id), None) => Some(ImageSource::LaunchTemplate {
                id_or_name: id,
                version: lt.version.unwrap_or_else(|| "$Latest".into()),
            }),
            (None, Some(name)) => Some(ImageSource::LaunchTemplate {
                id_or_name: name,
                version: lt.version.unwrap_or_else(|| "$Latest".into()),
            }),
            _ => {
                c.err(
                    "pool",
                    Some(i),
                    "launch_template",
                    n,
                    "set exactly one of id or name".into(),
                );
                None
            }
        },
    };
    for s in &rp.subnets {
        if !s.starts_with("subnet-") {
            c.err(
                "pool",
                Some(i),
                "subnets",
                n,
                format!("`{s}` is not a subnet id (subnet-...)"),
            );
        }
    }
    for s in &rp.security_groups {
        if !s.starts_with("sg-") {
            c.err(
                "pool",
                Some(i),
                "security_groups",
                n,
                format!("`{s}` is not a security group id (sg-...)"),
            );
        }
    }
    let purchase = match rp.purchase.as_deref() {
        None | Some("on-demand") => Purchase::OnDemand,
        Some("spot") => Purchase::Spot,
        Some("spot-then-on-demand") => Purchase::SpotThenOnDemand,
        Some(o) => {
            c.err("pool", Some(i), "purchase", n, format!("`{o}` is not a purchase option: use \"on-demand\", \"spot\" or \"spot-then-on-demand\""));
            Purchase::OnDemand
        }
    };
    let min_instances = match rp.min_instances {
        None => 0,
        Some(m) if (0..=10_000).contains(&m) => m as u32,
        Some(m) => {
            c.err(
                "pool",
                Some(i),
                "min_instances",
                n,
                format!("{m} is out of range: use 0 to 10000"),
            );
            0
        }
    };
    let max_instances = if (0..=10_000).contains(&rp.max_instances) {
        rp.max_instances as u32
    } else {
        c.err(
            "pool",
            Some(i),
            "max_instances",
            n,
            format!("{} is out of range: use 0 to 10000", rp.max_instances),
        );
        0
    };
    if min_instances > max_instances {
        c.err("pool", Some(i), "max_instances", n, format!("{max_instances} is below min_instances ({min_instances}): raise max_instances or lower min_instances"));
    }
    let spare_executors = match rp.spare_executors {
        None => 0,
        Some(s) if (0..=100_000).contains(&s) => s as u32,
        Some(s) => {
            c.err(
                "pool",
                Some(i),
                "spare_executors",
                n,
                format!("{s} is out of range: use 0 to 100000"),
            );
            0
        }
    };
    let idle_timeout_ms = c.duration(
        "pool",
        Some(i),
        "idle_timeout",
        n,
        &rp.idle_timeout,
        600_000,
        0,
        7 * 86_400_000,
    );
    let boot_deadline_ms = c.duration(
        "pool",
        Some(i),
        "boot_deadline",
        n,
        &rp.boot_deadline,
        600_000,
        30_000,
        86_400_000,
    );
    let user_data = match (rp.user_data, rp.user_data_file) {
        (Some(_), Some(_)) => {
            c.err(
                "pool",
                Some(i),
                "user_data_file",
                n,
                "both user_data and user_data_file are set: keep one".into(),
            );
            String::new()
        }
        (Some(t), None) => t,
        (None, Some(f)) => {
            let path = resolve(base, &f);
            match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    c.err(
                        "pool",
                        Some(i),
                        "user_data_file",
                        n,
                        format!("cannot read {}: {e}", path.display()),
                    );
                    String::new()
                }
            }
        }
        (None, None) => DEFAULT_USER_DATA.to_string(),
    };
    let key = "user_data";
    for ph in placeholders(&user_data) {
        if ph == "secret" {
            c.err(
                "pool",
                Some(i),
                key,
                n,
                "{{secret}} is no longer allowed: user-data is readable by anyone with ec2:DescribeInstanceAttribute and by every process on the instance, so the fleet stores each agent's secret in SSM (/nectr/agents/<node>/secret) and the boot script reads it with the instance's role; remove {{secret}} (see fleet/README.md, \"The agent secret\")".into(),
            );
            continue;
        }
        if !USER_DATA_PLACEHOLDERS.contains(&ph.as_str()) {
            c.err(
                "pool",
                Some(i),
                key,
                n,
                format!(
                    "unknown placeholder {{{{{ph}}}}}: the known ones are {}",
                    USER_DATA_PLACEHOLDERS.join(", ")
                ),
            );
        }
    }
    if !user_data.is_empty() && !user_data.contains("{{node_name}}") {
        c.err(
            "pool",
            Some(i),
            key,
            n,
            "the template must use {{node_name}}: the boot script needs it to find the agent's secret and connect".into(),
        );
    }
    if user_data.len() > 12_000 {
        c.err(
            "pool",
            Some(i),
            key,
            n,
            format!(
                "is {} bytes: EC2 allows 16 KiB of user data; keep the template under 12000 bytes so the rendered script fits",
                user_data.len()
            ),
        );
    }
    let remote_fs = rp.remote_fs.unwrap_or_else(|| "/home/jenkins/agent".into());
    if !remote_fs.starts_with('/') {
        c.err(
            "pool",
            Some(i),
            "remote_fs",
            n,
            format!("`{remote_fs}` is not an absolute path"),
        );
    }
    for k in rp.tags.keys() {
        if k.starts_with("nectr:") || k.starts_with("aws:") || k.is_empty() || k.len() > 128 {
            c.err("pool", Some(i), "tags", n, format!("tag key `{k}` is reserved or invalid: nectr: and aws: prefixes are not allowed"));
        }
    }
    let spot_discount = match rp.spot_discount {
        None => crate::pricing::DEFAULT_SPOT_DISCOUNT,
        Some(d) if d.is_finite() && (0.0..=0.95).contains(&d) => d,
        Some(d) => {
            c.err(
                "pool",
                Some(i),
                "spot_discount",
                n,
                format!("{d} is out of range: use 0 to 0.95 (0.6 prices spot at 40% of on-demand)"),
            );
            0.0
        }
    };
    let schedules = rp
        .schedule
        .iter()
        .enumerate()
        .filter_map(|(j, rs)| validate_schedule(c, i, n, j, rs, max_instances))
        .collect();
    if c.errors.len() > before {
        return None;
    }
    Some(Pool {
        schedules,
        spot_discount,
        rebalance: rp.rebalance,
        name,
        backend,
        labels,
        executors,
        instance_types: types,
        image: image?,
        subnets: rp.subnets,
        security_groups: rp.security_groups,
        instance_profile: rp.instance_profile,
        purchase,
        min_instances,
        max_instances,
        spare_executors,
        idle_timeout_ms,
        boot_deadline_ms,
        user_data,
        remote_fs,
        tags: rp.tags,
    })
}

/// One `[[pool.schedule]]` of pool `i`.
fn validate_schedule(
    c: &mut Ctx<'_>,
    i: usize,
    n: Option<&str>,
    j: usize,
    rs: &RawSchedule,
    max_instances: u32,
) -> Option<Schedule> {
    let before = c.errors.len();
    let key = |k: &str| format!("schedule[{j}].{k}");
    if let Err(e) = schedule::check_cron(&rs.cron) {
        c.err("pool", Some(i), &key("cron"), n, e);
    }
    if let Err(e) = schedule::parse_zone(&rs.timezone) {
        c.err("pool", Some(i), &key("timezone"), n, e);
    }
    let duration_ms = c.duration(
        "pool",
        Some(i),
        &key("duration"),
        n,
        &Some(rs.duration.clone()),
        0,
        60_000,
        schedule::MAX_DURATION_MS,
    );
    let min_instances = match rs.min_instances {
        None => None,
        Some(m) if m >= 0 && m <= i64::from(max_instances) => Some(m as u32),
        Some(m) => {
            c.err(
                "pool",
                Some(i),
                &key("min_instances"),
                n,
                format!("{m} is out of range: use 0 to the pool's max_instances ({max_instances})"),
            );
            None
        }
    };
    let spare_executors = match rs.spare_executors {
        None => None,
        Some(s) if (0..=100_000).contains(&s) => Some(s as u32),
        Some(s) => {
            c.err(
                "pool",
                Some(i),
                &key("spare_executors"),
                n,
                format!("{s} is out of range: use 0 to 100000"),
            );
            None
        }
    };
    if rs.min_instances.is_none() && rs.spare_executors.is_none() {
        c.err(
            "pool",
            Some(i),
            &key("cron"),
            n,
            "this schedule changes nothing: set min_instances, spare_executors or both".into(),
        );
    }
    (c.errors.len() == before).then(|| Schedule {
        cron: rs.cron.trim().to_string(),
        duration_ms,
        timezone: rs.timezone.clone(),
        min_instances,
        spare_executors,
    })
}

/// Resolve and check a `ca_file` key: the file must hold at least one PEM certificate.
fn ca_file(c: &mut Ctx<'_>, table: &str, v: Option<&str>, base: &Path) -> Option<PathBuf> {
    let p = resolve(base, v?);
    if let Err(e) = crate::tls::read_pem_certs(&p) {
        c.err(table, None, "ca_file", None, e);
    }
    Some(p)
}

fn placeholders(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(s) = rest.find("{{") {
        let after = &rest[s + 2..];
        match after.find("}}") {
            Some(e) => {
                out.push(after[..e].trim().to_string());
                rest = &after[e + 2..];
            }
            None => break,
        }
    }
    out
}

/// `http(s)://host[:port]` with no path, without a trailing `/` (`aws.imds_endpoint` and
/// `$AWS_EC2_METADATA_SERVICE_ENDPOINT`).
pub fn normalize_imds_endpoint(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &s[7..]
    } else if lower.starts_with("https://") {
        &s[8..]
    } else {
        return Err(format!(
            "`{s}` is not an http URL: write it like \"http://169.254.169.254\""
        ));
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(format!("`{s}` has no host name"));
    }
    if rest.contains(['/', '?', '#']) || rest.contains(char::is_whitespace) {
        return Err(format!(
            "`{s}` must be scheme, host and port only (no path): like \"http://169.254.169.254\""
        ));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// An SSM parameter name as SSM accepts it: letters, digits and `_.-/`, at most 2048
/// characters, a path (`/a/b`) or a plain name, no `//`, not under the reserved `aws`/`ssm`
/// prefixes.
pub(crate) fn check_ssm_parameter_name(name: &str) -> Result<(), String> {
    let shown: String = name.chars().take(80).collect();
    if name.is_empty() {
        return Err("ssm is empty: name the parameter holding the image id, e.g. ami = { ssm = \"/nectr/ami/agent\" }".into());
    }
    if name.len() > 2048 {
        return Err(format!(
            "ssm `{shown}...` is longer than SSM's 2048 characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
    {
        return Err(format!(
            "ssm `{shown}` has {bad:?}, which SSM parameter names cannot hold (letters, digits, _ . - /)"
        ));
    }
    if name.contains("//") || (name.contains('/') && !name.starts_with('/')) || name.ends_with('/')
    {
        return Err(format!(
            "ssm `{shown}` is not a parameter path: write it as /a/b (a leading /, no empty segment)"
        ));
    }
    let first = name.trim_start_matches('/').to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        // Public parameters (/aws/service/...) are allowed: they are read-only paths.
        if !name.starts_with("/aws/service/") {
            return Err(format!(
                "ssm `{shown}`: names starting with aws or ssm are reserved by SSM; use your own path such as /nectr/ami/agent"
            ));
        }
    }
    Ok(())
}
