//! [`CloudProvider`] over the AWS SDK: EC2 for instances and images, SSM for the agents'
//! secrets and image parameters.

use super::aws::{block_on, endpoint_for, sdk_config, sdk_error, Call};
use super::credentials::SharedCredentials;
use super::{
    node_of_secret_parameter, secret_parameter, CloudError, CloudErrorKind, CloudProvider,
    ImageRef, Instance, InstanceState, LaunchSpec, Market, StoredSecret, SECRET_PARAMETER_PREFIX,
};
use crate::config::AwsConfig;
use crate::secret::Secret;
use aws_sdk_ec2::types::{
    Filter, IamInstanceProfileSpecification, InstanceInterruptionBehavior,
    InstanceMarketOptionsRequest, LaunchTemplateSpecification, MarketType, ResourceType,
    ShutdownBehavior, SpotInstanceType, SpotMarketOptions, Tag, TagSpecification,
};
use base64::Engine;
use std::collections::BTreeMap;

pub struct Ec2Provider {
    pub(super) ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    pub(super) asg: aws_sdk_autoscaling::Client,
    ec2_endpoint: String,
    ssm_endpoint: String,
    pub(super) asg_endpoint: String,
    pub(super) creds: SharedCredentials,
    pub(super) timeout_ms: u64,
}

impl std::fmt::Debug for Ec2Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Provider")
            .field("endpoint", &self.ec2_endpoint)
            .field("credentials", &self.creds.description())
            .finish_non_exhaustive()
    }
}

impl Ec2Provider {
    /// `creds`: static [`Credentials`](super::credentials::Credentials) or a shared source
    /// (see [`credential_source`](super::credentials::credential_source)).
    pub fn new(cfg: &AwsConfig, creds: impl Into<SharedCredentials>) -> Result<Self, String> {
        let creds = creds.into();
        let shared = sdk_config(cfg, &creds)?;
        Ok(Ec2Provider {
            ec2: aws_sdk_ec2::Client::new(&shared),
            ssm: aws_sdk_ssm::Client::new(&shared),
            asg: aws_sdk_autoscaling::Client::new(&shared),
            ec2_endpoint: endpoint_for(cfg, "ec2"),
            ssm_endpoint: endpoint_for(cfg, "ssm"),
            asg_endpoint: endpoint_for(cfg, "autoscaling"),
            creds,
            timeout_ms: cfg.timeout_ms,
        })
    }

    pub(super) fn call<'a>(&'a self, action: &'a str) -> Call<'a> {
        Call {
            action,
            endpoint: &self.ec2_endpoint,
            creds: &self.creds,
            timeout_ms: self.timeout_ms,
        }
    }

    fn ssm_call<'a>(&'a self, action: &'a str) -> Call<'a> {
        Call {
            action,
            endpoint: &self.ssm_endpoint,
            creds: &self.creds,
            timeout_ms: self.timeout_ms,
        }
    }
}

fn bad_answer(action: &str, what: &str) -> CloudError {
    CloudError {
        kind: CloudErrorKind::Other,
        code: "BadResponse".into(),
        message: format!("{action}: {what}"),
    }
}

/// The fleet's view of an SDK instance.
fn instance_of(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let id = i.instance_id()?.trim();
    if id.is_empty() {
        return None;
    }
    Some(Instance {
        id: id.to_string(),
        state: InstanceState::parse(
            i.state()
                .and_then(|s| s.name())
                .map(|n| n.as_str())
                .unwrap_or(""),
        ),
        instance_type: i
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        launch_time_ms: i
            .launch_time()
            .and_then(|t| t.to_millis().ok())
            .and_then(|ms| u64::try_from(ms).ok()),
        spot: i.instance_lifecycle().map(|l| l.as_str()) == Some("spot"),
        tags: i
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
            .collect::<BTreeMap<_, _>>(),
    })
}

impl CloudProvider for Ec2Provider {
    fn describe_owned(&self, fleet_id: &str) -> Result<Vec<Instance>, CloudError> {
        let call = self.call("DescribeInstances");
        let pages = block_on(
            self.ec2
                .describe_instances()
                .filters(
                    Filter::builder()
                        .name(format!("tag:{}", super::TAG_FLEET))
                        .values(fleet_id)
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .set_values(Some(
                            ["pending", "running", "shutting-down", "stopping", "stopped"]
                                .iter()
                                .map(|s| s.to_string())
                                .collect(),
                        ))
                        .build(),
                )
                .max_results(1000)
                .into_paginator()
                .send()
                .collect::<Vec<_>>(),
        )?;
        let mut out = Vec::new();
        for page in pages {
            let page = page.map_err(|e| sdk_error(&call, e))?;
            for r in page.reservations() {
                out.extend(r.instances().iter().filter_map(instance_of));
            }
        }
        Ok(out)
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<String, CloudError> {
        let call = self.call("RunInstances");
        let mut req = self
            .ec2
            .run_instances()
            .instance_type(spec.offering.instance_type.as_str().into())
            .min_count(1)
            .max_count(1)
            .client_token(&spec.client_token)
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .user_data(base64::engine::general_purpose::STANDARD.encode(spec.user_data.expose()))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(
                        spec.tags
                            .iter()
                            .map(|(k, v)| Tag::builder().key(k).value(v).build())
                            .collect(),
                    ))
                    .build(),
            );
        req = match &spec.image {
            ImageRef::Ami(id) => req.image_id(id),
            ImageRef::LaunchTemplate {
                id_or_name,
                version,
            } => {
                let t = LaunchTemplateSpecification::builder().version(version);
                let t = if id_or_name.starts_with("lt-") {
                    t.launch_template_id(id_or_name)
                } else {
                    t.launch_template_name(id_or_name)
                };
                req.launch_template(t.build())
            }
        };
        if let Some(s) = &spec.subnet {
            req = req.subnet_id(s);
        }
        for g in &spec.security_groups {
            req = req.security_group_ids(g);
        }
        if let Some(p) = &spec.instance_profile {
            let b = IamInstanceProfileSpecification::builder();
            req = req.iam_instance_profile(if p.starts_with("arn:") {
                b.arn(p).build()
            } else {
                b.name(p).build()
            });
        }
        if spec.offering.market == Market::Spot {
            req = req.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                            .build(),
                    )
                    .build(),
            );
        }
        let out = block_on(req.send())?.map_err(|e| sdk_error(&call, e))?;
        out.instances()
            .iter()
            .find_map(|i| i.instance_id().map(str::to_string))
            .ok_or_else(|| bad_answer("RunInstances", "the answer has no instance id"))
    }

    fn terminate(&self, instance_ids: &[String]) -> Result<(), CloudError> {
        if instance_ids.is_empty() {
            return Ok(());
        }
        let call = self.call("TerminateInstances");
        block_on(
            self.ec2
                .terminate_instances()
                .set_instance_ids(Some(instance_ids.to_vec()))
                .send(),
        )?
        .map(|_| ())
        .map_err(|e| sdk_error(&call, e))
    }

    fn newest_image(&self, key: &str, value: &str) -> Result<String, CloudError> {
        let call = self.call("DescribeImages");
        let out = block_on(
            self.ec2
                .describe_images()
                .owners("self")
                .filters(
                    Filter::builder()
                        .name(format!("tag:{key}"))
                        .values(value)
                        .build(),
                )
                .filters(Filter::builder().name("state").values("available").build())
                .send(),
        )?
        .map_err(|e| sdk_error(&call, e))?;
        out.images()
            .iter()
            .filter_map(|i| {
                Some((
                    i.creation_date().unwrap_or("").to_string(),
                    i.image_id()?.to_string(),
                ))
            })
            .max()
            .map(|(_, id)| id)
            .ok_or_else(|| CloudError {
                kind: CloudErrorKind::Invalid,
                code: "NoImage".into(),
                message: format!("no available image owned by this account has tag {key}={value}: build one (packer build ami/) or fix the pool's ami"),
            })
    }

    fn image_parameter(&self, name: &str) -> Result<String, CloudError> {
        let call = self.ssm_call("GetParameter");
        let out = block_on(self.ssm.get_parameter().name(name).send())?.map_err(|e| {
            let mut err = sdk_error(&call, e);
            if err.code == "ParameterNotFound" {
                err.message = format!("GetParameter: there is no SSM parameter {name} in this region: record the image id there (aws ssm put-parameter --name {name} --type String --data-type aws:ec2:image --value ami-...) or fix the pool's ami");
            }
            err
        })?;
        let value = out
            .parameter()
            .and_then(|p| p.value())
            .unwrap_or("")
            .trim()
            .to_string();
        if !value.starts_with("ami-") {
            return Err(CloudError {
                kind: CloudErrorKind::Invalid,
                code: "NotAnImage".into(),
                message: format!("GetParameter: the SSM parameter {name} holds `{}`, not an image id (ami-...): fix the parameter or the pool's ami", value.chars().take(64).collect::<String>()),
            });
        }
        Ok(value)
    }

    fn put_agent_secret(
        &self,
        fleet_id: &str,
        node: &str,
        secret: &Secret,
    ) -> Result<(), CloudError> {
        let call = self.ssm_call("PutParameter");
        let tag = |k: &str, v: &str| {
            aws_sdk_ssm::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| bad_answer("PutParameter", &e.to_string()))
        };
        let r = block_on(
            self.ssm
                .put_parameter()
                .name(secret_parameter(node))
                .description("nectr-fleet: the Jenkins agent secret of this node")
                .value(secret.expose())
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .tags(tag(super::TAG_NODE, node)?)
                .tags(tag(super::TAG_FLEET, fleet_id)?)
                .send(),
        )?;
        match r {
            Ok(_) => Ok(()),
            // Written by an earlier attempt for the same node: same name, same secret.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_already_exists()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error(&call, e)),
        }
    }

    fn tag_agent_secret(&self, node: &str, instance_id: &str) -> Result<(), CloudError> {
        let call = self.ssm_call("AddTagsToResource");
        block_on(
            self.ssm
                .add_tags_to_resource()
                .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                .resource_id(secret_parameter(node))
                .tags(
                    aws_sdk_ssm::types::Tag::builder()
                        .key(super::TAG_INSTANCE)
                        .value(instance_id)
                        .build()
                        .map_err(|e| bad_answer("AddTagsToResource", &e.to_string()))?,
                )
                .send(),
        )?
        .map(|_| ())
        .map_err(|e| sdk_error(&call, e))
    }

    fn delete_agent_secret(&self, node: &str) -> Result<(), CloudError> {
        let call = self.ssm_call("DeleteParameter");
        match block_on(
            self.ssm
                .delete_parameter()
                .name(secret_parameter(node))
                .send(),
        )? {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = sdk_error(&call, e);
                // Already gone is what was wanted.
                if err.code == "ParameterNotFound" {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    fn list_agent_secrets(&self, fleet_id: &str) -> Result<Vec<StoredSecret>, CloudError> {
        let call = self.ssm_call("DescribeParameters");
        let filter = |k: &str, opt: &str, v: &str| {
            aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key(k)
                .option(opt)
                .values(v)
                .build()
                .map_err(|e| bad_answer("DescribeParameters", &e.to_string()))
        };
        let pages = block_on(
            self.ssm
                .describe_parameters()
                .parameter_filters(filter(
                    &format!("tag:{}", super::TAG_FLEET),
                    "Equals",
                    fleet_id,
                )?)
                .parameter_filters(filter("Name", "BeginsWith", SECRET_PARAMETER_PREFIX)?)
                .max_results(50)
                .into_paginator()
                .send()
                .collect::<Vec<_>>(),
        )?;
        let mut out = Vec::new();
        for page in pages {
            let page = page.map_err(|e| sdk_error(&call, e))?;
            for p in page.parameters() {
                let Some(node) = p.name().and_then(node_of_secret_parameter) else {
                    continue;
                };
                out.push(StoredSecret {
                    node: node.to_string(),
                    written_ms: p
                        .last_modified_date()
                        .and_then(|t| t.to_millis().ok())
                        .and_then(|ms| u64::try_from(ms).ok()),
                });
            }
        }
        Ok(out)
    }

    fn describe_group(&self, name: &str) -> Result<super::Group, CloudError> {
        self.asg_describe_group(name)
    }

    fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<(), CloudError> {
        self.asg_set_desired_capacity(group, desired)
    }

    fn terminate_in_group(&self, instance_id: &str, decrement: bool) -> Result<(), CloudError> {
        self.asg_terminate(instance_id, decrement)
    }

    fn set_scale_in_protection(
        &self,
        group: &str,
        instance_ids: &[String],
        protected: bool,
    ) -> Result<(), CloudError> {
        self.asg_protect(group, instance_ids, protected)
    }

    fn tag_instance(
        &self,
        instance_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        self.ec2_tag_instance(instance_id, tags)
    }
}
