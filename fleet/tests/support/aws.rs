//! A plain AWS SDK client on moto, for fixtures (images, launch templates, a stopped instance)
//! and for asserting on what moto received (user-data, SSM parameters). The fleet's own
//! clients live in `nectr_fleet::cloud`; this one is the test's independent view.

use aws_sdk_ec2::types::{Filter, Tag};
use std::future::Future;

pub struct RawAws {
    rt: tokio::runtime::Runtime,
    pub ec2: aws_sdk_ec2::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub asg: aws_sdk_autoscaling::Client,
}

impl RawAws {
    /// Clients for moto at `endpoint` (region us-east-1, fixed test keys).
    pub fn new(endpoint: &str) -> RawAws {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let creds = aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test");
        let shared = rt.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .endpoint_url(endpoint.trim_end_matches('/'))
                .credentials_provider(creds)
                // moto speaks plain HTTP on loopback (the fleet's SDK has no default client).
                .http_client(aws_smithy_http_client::Builder::new().build_http())
                .load(),
        );
        RawAws {
            ec2: aws_sdk_ec2::Client::new(&shared),
            ssm: aws_sdk_ssm::Client::new(&shared),
            asg: aws_sdk_autoscaling::Client::new(&shared),
            rt,
        }
    }

    pub fn run<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// An untagged instance to make images from.
    pub fn scratch_instance(&self, ami: &str) -> String {
        let out = self
            .run(
                self.ec2
                    .run_instances()
                    .image_id(ami)
                    .min_count(1)
                    .max_count(1)
                    .send(),
            )
            .expect("RunInstances");
        out.instances()[0].instance_id().expect("id").to_string()
    }

    /// An image of `instance` tagged `key` = `value`; its id.
    pub fn tagged_image(&self, instance: &str, name: &str, key: &str, value: &str) -> String {
        let out = self
            .run(
                self.ec2
                    .create_image()
                    .instance_id(instance)
                    .name(name)
                    .send(),
            )
            .expect("CreateImage");
        let id = out.image_id().expect("image id").to_string();
        self.run(
            self.ec2
                .create_tags()
                .resources(&id)
                .tags(Tag::builder().key(key).value(value).build())
                .send(),
        )
        .expect("CreateTags");
        id
    }

    pub fn launch_template(&self, name: &str, ami: &str, instance_type: &str) {
        self.run(
            self.ec2
                .create_launch_template()
                .launch_template_name(name)
                .launch_template_data(
                    aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                        .image_id(ami)
                        .instance_type(instance_type.into())
                        .build(),
                )
                .send(),
        )
        .expect("CreateLaunchTemplate");
    }

    /// (instance id, image id) of every instance tagged with `fleet_id`, in any state.
    pub fn fleet_images(&self, fleet_id: &str) -> Vec<(String, String)> {
        let out = self
            .run(
                self.ec2
                    .describe_instances()
                    .filters(
                        Filter::builder()
                            .name("tag:nectr:fleet-id")
                            .values(fleet_id)
                            .build(),
                    )
                    .send(),
            )
            .expect("DescribeInstances");
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                (
                    i.instance_id().unwrap_or("").to_string(),
                    i.image_id().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    pub fn stop(&self, id: &str) {
        self.run(self.ec2.stop_instances().instance_ids(id).send())
            .expect("StopInstances");
    }

    /// The user-data moto holds for `id`, decoded.
    pub fn user_data(&self, id: &str) -> String {
        use base64::Engine;
        let out = self
            .run(
                self.ec2
                    .describe_instance_attribute()
                    .instance_id(id)
                    .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
                    .send(),
            )
            .expect("DescribeInstanceAttribute");
        let b64 = out
            .user_data()
            .and_then(|u| u.value())
            .unwrap_or("")
            .to_string();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64 user-data"),
        )
        .expect("UTF-8 user-data")
    }
}
