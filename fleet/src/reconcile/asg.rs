//! Pools with `backend = "asg"`: an Auto Scaling group launches their instances.
//!
//! - capacity is the group's desired capacity: a scale-out creates the nodes (and stores
//!   their secrets) first, as for EC2, then raises the desired capacity by that many, within
//!   the group's `max_size`; each such node waits in the launch ledger (in flight toward
//!   demand and every cap) until an instance of the group is adopted for it;
//! - adoption: every instance of the group the fleet has not tagged yet (launched for a
//!   scale-out, or by the group itself: health-check replacements, AZ rebalancing) gets the
//!   oldest waiting node of its pool, or a new node, and is tagged `nectr:node` (and fleet,
//!   pool, token, Jenkins URL): the boot script finds its node name in those tags, its secret
//!   is already in SSM. From then on it is an owned instance like any other: the same fence,
//!   retire, orphan and cap rules apply;
//! - scale-in is targeted: an idle, fenced, settled node is retired as for EC2 (node deleted
//!   first), then its instance is terminated with `TerminateInstanceInAutoScalingGroup` and
//!   `ShouldDecrementDesiredCapacity`, so the group neither replaces it nor picks another;
//! - instances whose node is not certainly idle carry scale-in protection, so the group's own
//!   scale-in (an operator lowering the desired capacity, a scaling policy) never picks them;
//!   it is cleared once the node is idle again.

use super::{PollReport, Reconciler};
use crate::cloud::{
    CloudError, Group, Instance, InstanceState, TAG_ASG, TAG_FLEET, TAG_JENKINS, TAG_NODE,
    TAG_POOL, TAG_TOKEN,
};
use crate::config::Pool;
use crate::jenkins::client::NodeSpec;
use crate::jenkins::{Computer, NodeTag};
use crate::scaler::{InFlight, LaunchPlan};
use std::collections::{BTreeMap, BTreeSet};

/// How long an instance tagged by adoption is not adopted again while the describe does not
/// show its tags yet (EC2's read-after-write lag).
const ADOPTION_MEMORY_MS: u64 = 600_000;

impl Reconciler {
    /// Read the group of every `asg` pool (part of the observation: a failure skips the poll).
    /// The Auto Scaling groups to describe: (pool, group name).
    pub(super) fn wanted_groups(&self) -> Vec<(String, String)> {
        self.cfg
            .pools
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.backend.group()?.to_string())))
            .collect()
    }

    /// Take in the groups described for this observation (see `read_cloud`): all of them,
    /// or none and the errors.
    pub(super) fn apply_groups(
        &mut self,
        described: Vec<(String, String, Result<Group, CloudError>)>,
    ) -> Result<(), Vec<String>> {
        let mut groups = BTreeMap::new();
        let mut errors = Vec::new();
        let now = self.clock.now_ms();
        for (pool, name, g) in described {
            match g {
                Ok(g) => {
                    groups.insert(pool, g);
                }
                Err(e) => {
                    self.note_cloud_error(&e, now);
                    errors.push(format!("pool {pool}: Auto Scaling group {name}: {e}"));
                }
            }
        }
        if errors.is_empty() {
            self.groups = groups;
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The group (by pool) holding `instance_id`, if any.
    fn group_holding(&self, instance_id: &str) -> Option<(&String, &Group)> {
        self.groups
            .iter()
            .find(|(_, g)| g.instances.iter().any(|i| i.id == instance_id))
    }

    /// Why an instance must not be retired now, if it must not: its group is at its
    /// `min_size`, so Auto Scaling would refuse to lower the desired capacity.
    pub(super) fn group_blocks_retire(&self, instance_id: &str) -> Option<String> {
        let (_, g) = self.group_holding(instance_id)?;
        (g.desired <= g.min).then(|| {
            format!(
                "its Auto Scaling group {} is at its min_size {} (desired {}): lower the group's min_size (the pool's min_instances keeps a floor)",
                g.name, g.min, g.desired
            )
        })
    }

    /// Terminate an owned instance: through its group (lowering the desired capacity, so it
    /// is not replaced) when it is in one, else with `TerminateInstances`.
    pub(super) fn terminate_instance(&mut self, instance_id: &str) -> Result<(), CloudError> {
        let pool = self.group_holding(instance_id).map(|(p, _)| p.clone());
        match pool {
            Some(pool) => {
                self.cloud.terminate_in_group(instance_id, true)?;
                if let Some(g) = self.groups.get_mut(&pool) {
                    g.desired = g.desired.saturating_sub(1);
                    g.instances.retain(|i| i.id != instance_id);
                }
                Ok(())
            }
            None => self.cloud.terminate(&[instance_id.to_string()]),
        }
    }

    /// Create `node` in Jenkins for `pool` and store its secret; on failure nothing is left.
    fn prepare_node(
        &self,
        pool: &Pool,
        token: &str,
        node: &str,
        executors: u32,
        instance: Option<&str>,
        now: u64,
    ) -> Result<(), String> {
        let tag = NodeTag {
            fleet: self.cfg.fleet_id.clone(),
            pool: pool.name.clone(),
            token: token.to_string(),
            instance: instance.map(str::to_string),
            created_ms: now,
        };
        let spec = NodeSpec {
            name: node.to_string(),
            description: tag.render(),
            executors,
            labels: pool.labels.iter().cloned().collect(),
            remote_fs: pool.remote_fs.clone(),
        };
        let forget = || {
            let _ = self.jenkins.delete_node(node);
            let _ = self.cloud.delete_agent_secret(node);
        };
        if let Err(e) = self.jenkins.create_node(&spec) {
            forget();
            return Err(format!("creating node {node}: {e}"));
        }
        let secret = match self.jenkins.agent_secret(node) {
            Ok(s) => s,
            Err(e) => {
                forget();
                return Err(format!("reading the agent secret of {node}: {e}"));
            }
        };
        if let Err(e) = self
            .cloud
            .put_agent_secret(&self.cfg.fleet_id, node, &secret)
        {
            forget();
            return Err(format!("storing the agent secret of {node}: {e}"));
        }
        Ok(())
    }

    fn forget_node(&self, node: &str) {
        let _ = self.jenkins.delete_node(node);
        let _ = self.cloud.delete_agent_secret(node);
    }

    /// Scale-out of `asg` pools: nodes first, then one `SetDesiredCapacity` per group.
    pub(super) fn launch_groups(
        &mut self,
        launches: &[&LaunchPlan],
        report: &mut PollReport,
        now: u64,
    ) {
        let mut by_pool: BTreeMap<&str, Vec<&LaunchPlan>> = BTreeMap::new();
        for l in launches {
            by_pool.entry(l.pool.as_str()).or_default().push(l);
        }
        let m = self.shared.clone();
        let metrics = &m.metrics;
        for (pool_name, ls) in by_pool {
            let Some(pool) = self.cfg.pool(pool_name).cloned() else {
                continue;
            };
            let Some(group) = self.groups.get(pool_name).cloned() else {
                report.errors.push(format!(
                    "launch for pool {pool_name}: its Auto Scaling group was not read"
                ));
                continue;
            };
            let room = group.max.saturating_sub(group.desired) as usize;
            if room < ls.len() {
                metrics.inc(
                    "nectr_fleet_launch_failures_total",
                    &[("pool", pool_name), ("reason", "group_max")],
                    (ls.len() - room) as f64,
                );
                report.errors.push(format!(
                    "pool {pool_name}: {} launch(es) not made: Auto Scaling group {} is at its max_size {} (desired {}); raise the group's max_size or lower the pool's max_instances",
                    ls.len() - room,
                    group.name,
                    group.max,
                    group.desired
                ));
            }
            let mut made: Vec<(String, String)> = Vec::new();
            for l in ls.iter().take(room) {
                if !self.may_act() || self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let token = self.clock.random_hex(8);
                let node = format!("{}-{}-{}", self.cfg.jenkins.node_prefix, pool.name, token);
                match self.prepare_node(&pool, &token, &node, l.executors, None, now) {
                    Ok(()) => {
                        let price = pool.instance_types.first().and_then(|t| t.price);
                        self.memory.ledger.insert(
                            token.clone(),
                            InFlight {
                                pool: pool.name.clone(),
                                node: node.clone(),
                                executors: l.executors,
                                price,
                                started_ms: now,
                                instance_id: None,
                            },
                        );
                        made.push((token, node));
                    }
                    Err(e) => {
                        metrics.inc(
                            "nectr_fleet_launch_failures_total",
                            &[("pool", pool_name), ("reason", "jenkins")],
                            1.0,
                        );
                        report
                            .errors
                            .push(format!("launch for pool {pool_name} failed: {e}"));
                    }
                }
            }
            if made.is_empty() {
                continue;
            }
            let target = group.desired + made.len() as u32;
            match self.cloud.set_desired_capacity(&group.name, target) {
                Ok(()) => {
                    if let Some(g) = self.groups.get_mut(pool_name) {
                        g.desired = target;
                    }
                    let done = self.clock.now_ms();
                    for (_, node) in &made {
                        self.memory.launched_at.insert(node.clone(), done);
                        metrics.inc(
                            "nectr_fleet_launches_total",
                            &[("pool", pool_name), ("offering", "asg")],
                            1.0,
                        );
                        report.actions.push(format!(
                            "raised Auto Scaling group {} to {target} for node {node}",
                            group.name
                        ));
                    }
                }
                Err(e) if super::launch_outcome_unknown(&e) => {
                    // It may have landed: the nodes stay in flight until an instance is
                    // adopted for them or they are proven absent.
                    self.note_cloud_error(&e, now);
                    report.errors.push(format!(
                        "pool {pool_name}: SetDesiredCapacity {target} on {} without a clear answer; {} node(s) kept in flight: {e}",
                        group.name,
                        made.len()
                    ));
                }
                Err(e) => {
                    self.note_cloud_error(&e, now);
                    for (token, node) in &made {
                        self.forget_node(node);
                        self.memory.ledger.remove(token);
                        self.memory.settled_tokens.insert(token.clone());
                        metrics.inc(
                            "nectr_fleet_launch_failures_total",
                            &[("pool", pool_name), ("reason", e.kind.as_str())],
                            1.0,
                        );
                    }
                    report.errors.push(format!(
                        "launch for pool {pool_name} failed: SetDesiredCapacity {target} on {}: {e}",
                        group.name
                    ));
                }
            }
        }
    }

    /// Give every untagged instance of an `asg` pool's group a node (a waiting one of its
    /// pool, oldest first, else a new one) and tag it. Returns the adopted instances as the
    /// describe will show them, for this poll's observation.
    pub(super) fn adopt_group_instances(
        &mut self,
        instances: &[Instance],
        report: &mut PollReport,
        now: u64,
    ) -> Vec<Instance> {
        let mut out = Vec::new();
        let tagged: BTreeSet<&str> = instances
            .iter()
            .filter(|i| i.node().is_some())
            .map(|i| i.id.as_str())
            .collect();
        let in_groups: BTreeSet<String> = self
            .groups
            .values()
            .flat_map(|g| g.instances.iter().map(|i| i.id.clone()))
            .collect();
        self.adopted.retain(|id, at| {
            !tagged.contains(id.as_str())
                && in_groups.contains(id)
                && now.saturating_sub(*at) < ADOPTION_MEMORY_MS
        });
        let m = self.shared.clone();
        let metrics = &m.metrics;
        let groups: Vec<(String, Group)> = self
            .groups
            .iter()
            .map(|(p, g)| (p.clone(), g.clone()))
            .collect();
        for (pool_name, group) in groups {
            let Some(pool) = self.cfg.pool(&pool_name).cloned() else {
                continue;
            };
            for gi in group.instances.iter().filter(|i| i.in_group()) {
                if tagged.contains(gi.id.as_str()) || self.adopted.contains_key(&gi.id) {
                    continue;
                }
                if !self.may_act() || self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return out;
                }
                let waiting = self
                    .memory
                    .ledger
                    .iter()
                    .filter(|(_, e)| e.pool == pool_name && e.instance_id.is_none())
                    .min_by_key(|(_, e)| e.started_ms)
                    .map(|(t, e)| (t.clone(), e.node.clone()));
                let (token, node, fresh) = match waiting {
                    Some((t, n)) => (t, n, false),
                    None => {
                        let token = self.clock.random_hex(8);
                        let node =
                            format!("{}-{}-{}", self.cfg.jenkins.node_prefix, pool.name, token);
                        let executors = pool
                            .instance_type(&gi.instance_type)
                            .map_or(pool.executors, |t| t.executors);
                        if let Err(e) =
                            self.prepare_node(&pool, &token, &node, executors, Some(&gi.id), now)
                        {
                            report
                                .errors
                                .push(format!("adopting {} of group {}: {e}", gi.id, group.name));
                            continue;
                        }
                        (token, node, true)
                    }
                };
                let mut tags = pool.tags.clone();
                tags.insert(TAG_FLEET.into(), self.cfg.fleet_id.clone());
                tags.insert(TAG_JENKINS.into(), self.cfg.jenkins.url.clone());
                tags.insert(TAG_POOL.into(), pool.name.clone());
                tags.insert(TAG_NODE.into(), node.clone());
                tags.insert(TAG_TOKEN.into(), token.clone());
                tags.insert("Name".into(), node.clone());
                match self.cloud.tag_instance(&gi.id, &tags) {
                    Ok(()) => {
                        let mut all_tags = tags.clone();
                        all_tags.insert(TAG_ASG.into(), group.name.clone());
                        out.push(Instance {
                            id: gi.id.clone(),
                            state: if gi.lifecycle.starts_with("Pending") {
                                InstanceState::Pending
                            } else {
                                InstanceState::Running
                            },
                            instance_type: gi.instance_type.clone(),
                            launch_time_ms: None,
                            spot: false,
                            tags: all_tags,
                        });
                        self.adopted.insert(gi.id.clone(), now);
                        if let Some(e) = self.memory.ledger.get_mut(&token) {
                            e.instance_id = Some(gi.id.clone());
                        }
                        if fresh {
                            self.memory.launched_at.insert(node.clone(), now);
                        } else {
                            let t = NodeTag {
                                fleet: self.cfg.fleet_id.clone(),
                                pool: pool.name.clone(),
                                token: token.clone(),
                                instance: Some(gi.id.clone()),
                                created_ms: self
                                    .memory
                                    .ledger
                                    .get(&token)
                                    .map_or(now, |e| e.started_ms),
                            };
                            if let Err(e) = self.jenkins.set_description(&node, &t.render()) {
                                crate::log_warn!("node {node}: description update failed (the instance is linked by its tags anyway): {e}");
                            }
                        }
                        if let Err(e) = self.cloud.tag_agent_secret(&node, &gi.id) {
                            crate::log_warn!(
                                "node {node}: tagging its stored secret with {} failed: {e}",
                                gi.id
                            );
                        }
                        metrics.inc(
                            "nectr_fleet_asg_adoptions_total",
                            &[
                                ("pool", &pool_name),
                                ("kind", if fresh { "group" } else { "scale_out" }),
                            ],
                            1.0,
                        );
                        report.actions.push(format!(
                            "adopted {} of Auto Scaling group {} as node {node}{}",
                            gi.id,
                            group.name,
                            if fresh {
                                " (launched by the group itself)"
                            } else {
                                ""
                            }
                        ));
                    }
                    Err(e) => {
                        self.note_cloud_error(&e, now);
                        if fresh {
                            self.forget_node(&node);
                        }
                        report.errors.push(format!(
                            "adopting {} of group {}: tagging failed: {e}",
                            gi.id, group.name
                        ));
                    }
                }
            }
        }
        out
    }

    /// Scale-in protection on exactly the group instances whose node is not certainly idle.
    pub(super) fn protect_busy(
        &mut self,
        instances: &[Instance],
        computers: &[Computer],
        report: &mut PollReport,
    ) {
        let by_name: BTreeMap<&str, &Computer> =
            computers.iter().map(|c| (c.name.as_str(), c)).collect();
        let node_of: BTreeMap<&str, &str> = instances
            .iter()
            .filter_map(|i| Some((i.id.as_str(), i.node()?)))
            .collect();
        let now = self.clock.now_ms();
        let groups: Vec<(String, Group)> = self
            .groups
            .iter()
            .map(|(p, g)| (p.clone(), g.clone()))
            .collect();
        for (pool, g) in groups {
            let (mut on, mut off) = (Vec::new(), Vec::new());
            for gi in g.instances.iter().filter(|i| i.in_group()) {
                let busy = node_of
                    .get(gi.id.as_str())
                    .and_then(|n| by_name.get(n))
                    .is_some_and(|c| !c.is_certainly_idle());
                if busy && !gi.protected {
                    on.push(gi.id.clone());
                } else if !busy && gi.protected {
                    off.push(gi.id.clone());
                }
            }
            for (ids, protect) in [(on, true), (off, false)] {
                if ids.is_empty() || !self.may_act() {
                    continue;
                }
                match self.cloud.set_scale_in_protection(&g.name, &ids, protect) {
                    Ok(()) => {
                        if let Some(gr) = self.groups.get_mut(&pool) {
                            for i in gr.instances.iter_mut().filter(|i| ids.contains(&i.id)) {
                                i.protected = protect;
                            }
                        }
                        report.actions.push(format!(
                            "{} scale-in protection on {} in group {} ({})",
                            if protect { "set" } else { "cleared" },
                            ids.join(", "),
                            g.name,
                            if protect { "running builds" } else { "idle" }
                        ));
                    }
                    Err(e) => {
                        self.note_cloud_error(&e, now);
                        report.errors.push(format!(
                            "scale-in protection on {} in group {}: {e}",
                            ids.join(", "),
                            g.name
                        ));
                    }
                }
            }
        }
    }

    /// The groups for `/status`.
    pub(super) fn groups_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.groups
                .iter()
                .map(|(pool, g)| {
                    (
                        pool.clone(),
                        serde_json::json!({
                            "group": g.name,
                            "desired": g.desired,
                            "min": g.min,
                            "max": g.max,
                            "instances": g.instances.iter().map(|i| serde_json::json!({
                                "id": i.id,
                                "lifecycle": i.lifecycle,
                                "healthy": i.healthy,
                                "protected": i.protected,
                            })).collect::<Vec<_>>(),
                        }),
                    )
                })
                .collect(),
        )
    }
}
