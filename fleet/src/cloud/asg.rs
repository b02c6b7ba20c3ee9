//! Auto Scaling groups over the AWS SDK, for pools with `backend = "asg"`: the group's desired
//! capacity and instances, targeted scale-in, scale-in protection, and the EC2 tags with which
//! the fleet adopts the instances a group launches.

use super::aws::{block_on, sdk_error, Call};
use super::ec2::Ec2Provider;
use super::{CloudError, CloudErrorKind, Group, GroupInstance};
use aws_sdk_ec2::types::Tag;
use std::collections::BTreeMap;

fn count(v: Option<i32>) -> u32 {
    v.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

impl Ec2Provider {
    fn asg_call<'a>(&'a self, action: &'a str) -> Call<'a> {
        Call {
            action,
            endpoint: &self.asg_endpoint,
            creds: &self.creds,
            timeout_ms: self.timeout_ms,
        }
    }

    pub(super) fn asg_describe_group(&self, name: &str) -> Result<Group, CloudError> {
        let call = self.asg_call("DescribeAutoScalingGroups");
        let out = block_on(
            self.asg
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(name)
                .send(),
        )?
        .map_err(|e| sdk_error(&call, e))?;
        let Some(g) = out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(name))
        else {
            return Err(CloudError {
                kind: CloudErrorKind::Invalid,
                code: "NoSuchGroup".into(),
                message: format!("DescribeAutoScalingGroups: there is no Auto Scaling group {name} in this region: create it (with a launch template whose instances run the nectr image and role) or fix the pool's group"),
            });
        };
        Ok(Group {
            name: name.to_string(),
            desired: count(g.desired_capacity()),
            min: count(g.min_size()),
            max: count(g.max_size()),
            instances: g
                .instances()
                .iter()
                .filter_map(|i| {
                    Some(GroupInstance {
                        id: i.instance_id()?.to_string(),
                        instance_type: i.instance_type().unwrap_or("").to_string(),
                        lifecycle: i
                            .lifecycle_state()
                            .map(|l| l.as_str().to_string())
                            .unwrap_or_default(),
                        healthy: i.health_status().is_none_or(|h| h == "Healthy"),
                        protected: i.protected_from_scale_in().unwrap_or(false),
                    })
                })
                .collect(),
        })
    }

    pub(super) fn asg_set_desired_capacity(
        &self,
        group: &str,
        desired: u32,
    ) -> Result<(), CloudError> {
        let call = self.asg_call("SetDesiredCapacity");
        block_on(
            self.asg
                .set_desired_capacity()
                .auto_scaling_group_name(group)
                .desired_capacity(i32::try_from(desired).unwrap_or(i32::MAX))
                .honor_cooldown(false)
                .send(),
        )?
        .map(|_| ())
        .map_err(|e| sdk_error(&call, e))
    }

    pub(super) fn asg_terminate(
        &self,
        instance_id: &str,
        decrement: bool,
    ) -> Result<(), CloudError> {
        let call = self.asg_call("TerminateInstanceInAutoScalingGroup");
        block_on(
            self.asg
                .terminate_instance_in_auto_scaling_group()
                .instance_id(instance_id)
                .should_decrement_desired_capacity(decrement)
                .send(),
        )?
        .map(|_| ())
        .map_err(|e| sdk_error(&call, e))
    }

    pub(super) fn asg_protect(
        &self,
        group: &str,
        instance_ids: &[String],
        protected: bool,
    ) -> Result<(), CloudError> {
        let call = self.asg_call("SetInstanceProtection");
        // At most 50 instances per call.
        for chunk in instance_ids.chunks(50) {
            block_on(
                self.asg
                    .set_instance_protection()
                    .auto_scaling_group_name(group)
                    .set_instance_ids(Some(chunk.to_vec()))
                    .protected_from_scale_in(protected)
                    .send(),
            )?
            .map_err(|e| sdk_error(&call, e))?;
        }
        Ok(())
    }

    pub(super) fn ec2_tag_instance(
        &self,
        instance_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        let call = self.call("CreateTags");
        block_on(
            self.ec2
                .create_tags()
                .resources(instance_id)
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .send(),
        )?
        .map(|_| ())
        .map_err(|e| sdk_error(&call, e))
    }
}
