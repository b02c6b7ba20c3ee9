//! The cloud provider boundary. [`CloudProvider`] is what the reconcile loop uses; [`ec2`]
//! implements it over the AWS SDK ([`aws`] holds the shared plumbing). No AWS SDK type leaves
//! this module.

mod asg;
mod aws;
pub mod credentials;
pub mod ec2;
pub mod s3;

pub use aws::classify;

use crate::secret::Secret;
use std::collections::BTreeMap;
use std::fmt;

/// Ownership tags on every instance.
pub const TAG_FLEET: &str = "nectr:fleet-id";
pub const TAG_JENKINS: &str = "nectr:jenkins-url";
pub const TAG_POOL: &str = "nectr:pool";
pub const TAG_NODE: &str = "nectr:node";
pub const TAG_TOKEN: &str = "nectr:launch-token";
/// On an agent's secret parameter: the instance that reads it, once known.
pub const TAG_INSTANCE: &str = "nectr:instance";
/// Set by Auto Scaling on every instance of a group: the group's name.
pub const TAG_ASG: &str = "aws:autoscaling:groupName";
/// Set by the instance itself (`ami/files/nectr-spot-watch`) when its instance metadata
/// shows a spot interruption notice: the notice's action time (ISO 8601).
pub const TAG_INTERRUPTION: &str = "nectr:interruption";
/// Set by the instance itself when its instance metadata shows a rebalance
/// recommendation: the notice time (ISO 8601). Acted on only in pools with
/// `rebalance = true`.
pub const TAG_REBALANCE: &str = "nectr:rebalance";

/// An Auto Scaling group as the fleet reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    pub instances: Vec<GroupInstance>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInstance {
    pub id: String,
    pub instance_type: String,
    /// Auto Scaling's lifecycle state (`Pending`, `InService`, `Terminating`, ...).
    pub lifecycle: String,
    /// `Healthy` per the group's health checks (an unhealthy one is about to be replaced).
    pub healthy: bool,
    pub protected: bool,
}

impl GroupInstance {
    /// Launched or running for the group: not on its way out (terminating, detaching, in
    /// standby or a warm pool).
    pub fn in_group(&self) -> bool {
        self.lifecycle.starts_with("Pending") || self.lifecycle == "InService"
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
    Unknown,
}

impl InstanceState {
    pub fn parse(s: &str) -> Self {
        match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "shutting-down" => Self::ShuttingDown,
            "terminated" => Self::Terminated,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub id: String,
    pub state: InstanceState,
    pub instance_type: String,
    pub launch_time_ms: Option<u64>,
    pub spot: bool,
    pub tags: BTreeMap<String, String>,
}

impl Instance {
    pub fn tag(&self, k: &str) -> Option<&str> {
        self.tags.get(k).map(String::as_str)
    }
    pub fn pool(&self) -> Option<&str> {
        self.tag(TAG_POOL)
    }
    pub fn node(&self) -> Option<&str> {
        self.tag(TAG_NODE)
    }
    pub fn token(&self) -> Option<&str> {
        self.tag(TAG_TOKEN)
    }
    /// The spot notice this instance reported about itself, if any: `"interruption"` (the
    /// 2-minute notice), else `"rebalance"` when `rebalance` is on for its pool.
    pub fn spot_notice(&self, rebalance: bool) -> Option<&'static str> {
        if self.tags.contains_key(TAG_INTERRUPTION) {
            Some("interruption")
        } else if rebalance && self.tags.contains_key(TAG_REBALANCE) {
            Some("rebalance")
        } else {
            None
        }
    }
    /// Counts against caps and can run an agent (everything but shutting-down/terminated).
    pub fn is_live(&self) -> bool {
        !matches!(
            self.state,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }
    /// Owned by this manager: fleet id and Jenkins URL tags both match.
    pub fn is_owned_by(&self, fleet_id: &str, jenkins_url: &str) -> bool {
        self.tag(TAG_FLEET) == Some(fleet_id) && self.tag(TAG_JENKINS) == Some(jenkins_url)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Market {
    Spot,
    OnDemand,
}

impl Market {
    pub fn as_str(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::OnDemand => "on-demand",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offering {
    pub instance_type: String,
    pub market: Market,
}

impl fmt::Display for Offering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.instance_type, self.market.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    Ami(String),
    LaunchTemplate { id_or_name: String, version: String },
}

#[derive(Clone, Debug)]
pub struct LaunchSpec {
    /// EC2 idempotency token: a retried call with the same token launches nothing new.
    pub client_token: String,
    pub image: ImageRef,
    pub offering: Offering,
    pub subnet: Option<String>,
    pub security_groups: Vec<String>,
    pub instance_profile: Option<String>,
    /// Non-secret settings only (the agent secret is stored apart, see
    /// [`CloudProvider::put_agent_secret`]); still a [`Secret`] so that a custom template's
    /// content is never logged.
    pub user_data: Secret,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CloudErrorKind {
    /// No capacity for this offering (InsufficientInstanceCapacity, spot unavailable, ...):
    /// try the next offering and back this one off.
    Capacity,
    /// Request rate exceeded: back off all cloud calls.
    Throttled,
    Auth,
    /// The request is wrong (bad AMI, subnet, parameter): fix the config.
    Invalid,
    Transport,
    Other,
}

impl CloudErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Capacity => "capacity",
            Self::Throttled => "throttled",
            Self::Auth => "auth",
            Self::Invalid => "invalid",
            Self::Transport => "transport",
            Self::Other => "other",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudError {
    pub kind: CloudErrorKind,
    /// The provider's code, e.g. `InsufficientInstanceCapacity`.
    pub code: String,
    pub message: String,
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // "Transport (transport)" says one thing twice.
        if self.code.eq_ignore_ascii_case(self.kind.as_str()) {
            write!(f, "{}: {}", self.code, self.message)
        } else {
            write!(
                f,
                "{} ({}): {}",
                self.code,
                self.kind.as_str(),
                self.message
            )
        }
    }
}

impl std::error::Error for CloudError {}

/// What the reconcile loop needs from a cloud. Implementations must be safe to call from
/// several threads (launches run in parallel).
pub trait CloudProvider: Send + Sync {
    /// Every non-terminated instance tagged with this fleet id (one paginated, tag-filtered
    /// describe).
    fn describe_owned(&self, fleet_id: &str) -> Result<Vec<Instance>, CloudError>;
    /// Launch one instance; returns its id.
    fn launch(&self, spec: &LaunchSpec) -> Result<String, CloudError>;
    fn terminate(&self, instance_ids: &[String]) -> Result<(), CloudError>;
    /// The newest image owned by this account with tag `key` = `value`.
    fn newest_image(&self, key: &str, value: &str) -> Result<String, CloudError>;
    /// The image id held by the SSM parameter `name` (a pool's `ami = { ssm = "..." }`); an
    /// error saying what to do when it is missing or holds something else than `ami-...`.
    fn image_parameter(&self, name: &str) -> Result<String, CloudError>;

    /// Store `node`'s agent secret where only its instance's role can read it (SSM
    /// SecureString [`secret_parameter`]`(node)`, tagged [`TAG_NODE`] and [`TAG_FLEET`]),
    /// before its instance is launched. Storing the same node's secret again is not an error
    /// (a node's secret depends only on its name).
    fn put_agent_secret(
        &self,
        fleet_id: &str,
        node: &str,
        secret: &Secret,
    ) -> Result<(), CloudError>;
    /// Tag the stored secret with the instance that reads it ([`TAG_INSTANCE`]).
    fn tag_agent_secret(&self, node: &str, instance_id: &str) -> Result<(), CloudError>;
    /// Delete `node`'s stored secret; one already gone is not an error.
    fn delete_agent_secret(&self, node: &str) -> Result<(), CloudError>;
    /// Every stored secret tagged with this fleet id (names only, never values).
    fn list_agent_secrets(&self, fleet_id: &str) -> Result<Vec<StoredSecret>, CloudError>;

    // Auto Scaling groups (pools with `backend = "asg"`). A cloud without them answers
    // every call with an `Invalid` error naming the call.

    /// The group's capacity settings and its instances.
    fn describe_group(&self, name: &str) -> Result<Group, CloudError> {
        Err(no_groups("DescribeAutoScalingGroups", name))
    }
    /// Set the group's desired capacity (cooldowns ignored: the fleet decides).
    fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<(), CloudError> {
        let _ = desired;
        Err(no_groups("SetDesiredCapacity", group))
    }
    /// Terminate one instance of a group, lowering its desired capacity by one when
    /// `decrement` (else the group launches a replacement).
    fn terminate_in_group(&self, instance_id: &str, decrement: bool) -> Result<(), CloudError> {
        let _ = decrement;
        Err(no_groups(
            "TerminateInstanceInAutoScalingGroup",
            instance_id,
        ))
    }
    /// Set or clear scale-in protection on instances of a group.
    fn set_scale_in_protection(
        &self,
        group: &str,
        instance_ids: &[String],
        protected: bool,
    ) -> Result<(), CloudError> {
        let _ = (instance_ids, protected);
        Err(no_groups("SetInstanceProtection", group))
    }
    /// Add tags to an instance a group launched (adoption: fleet, pool, node, ...).
    fn tag_instance(
        &self,
        instance_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        let _ = tags;
        Err(no_groups("CreateTags", instance_id))
    }
}

fn no_groups(action: &str, what: &str) -> CloudError {
    CloudError {
        kind: CloudErrorKind::Invalid,
        code: "Unsupported".into(),
        message: format!("{action} ({what}): this cloud has no Auto Scaling groups"),
    }
}

/// A stored agent secret, as listed (no value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSecret {
    pub node: String,
    /// When it was last written (ms since the epoch), if the store says.
    pub written_ms: Option<u64>,
}

/// Where a node's agent secret is stored: the SSM parameter the instance's boot script reads
/// (the contract with `jenkins-config/`'s boot script).
pub fn secret_parameter(node: &str) -> String {
    format!("{SECRET_PARAMETER_PREFIX}{node}/secret")
}

/// The path under which every agent secret is stored.
pub const SECRET_PARAMETER_PREFIX: &str = "/nectr/agents/";

/// The node whose secret `parameter` holds, if it is one.
pub fn node_of_secret_parameter(parameter: &str) -> Option<&str> {
    let node = parameter
        .strip_prefix(SECRET_PARAMETER_PREFIX)?
        .strip_suffix("/secret")?;
    (!node.is_empty() && !node.contains('/')).then_some(node)
}

#[cfg(test)]
mod iam_tests;
