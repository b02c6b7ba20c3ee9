//! EC2 over its Query API (`Action=...&Version=2016-11-15`, form-encoded POST, XML answers),
//! signed with SigV4. Chosen over the AWS SDK crates to keep the cold build small (see
//! fleet/README.md, "Why not the AWS SDK").

use super::credentials::SharedCredentials;
use super::sigv4::{authorization, Credentials};
use super::{
    CloudError, CloudErrorKind, CloudProvider, ImageRef, Instance, InstanceState, LaunchSpec,
    Market,
};
use crate::config::AwsConfig;
use crate::secret::Secret;
use crate::util::{form_encode, format_amz_date, now_ms, parse_iso8601_ms};
use base64::Engine;
use quick_xml::events::Event;
use std::collections::BTreeMap;

const API_VERSION: &str = "2016-11-15";

pub struct Ec2Provider {
    url: String,
    host: String,
    region: String,
    creds: SharedCredentials,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Ec2Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Provider")
            .field("url", &self.url)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Read credentials from `aws.credentials_file` (lines: key id, secret, optional session
/// token) or from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
pub fn load_credentials(cfg: &AwsConfig) -> Result<Credentials, String> {
    if let Some(path) = &cfg.credentials_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("aws.credentials_file: cannot read {}: {e}", path.display()))?;
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let id = lines.next();
        let secret = lines.next();
        let token = lines.next();
        return match (id, secret) {
            (Some(id), Some(secret)) => Ok(Credentials {
                access_key_id: id.to_string(),
                secret_access_key: Secret::new(secret),
                session_token: token.map(Secret::new),
            }),
            _ => Err(format!(
                "aws.credentials_file: {} must hold the access key id on the first line and the secret access key on the second",
                path.display()
            )),
        };
    }
    let id = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default();
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default();
    if id.is_empty() || secret.is_empty() {
        return Err("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or aws.credentials_file".into());
    }
    Ok(Credentials {
        access_key_id: id,
        secret_access_key: Secret::new(secret),
        session_token: std::env::var("AWS_SESSION_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(Secret::new),
    })
}

fn classify(code: &str, status: u16) -> CloudErrorKind {
    match code {
        "InsufficientInstanceCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientCapacity"
        | "InsufficientCapacityOnHost"
        | "SpotMaxPriceTooLow"
        | "MaxSpotInstanceCountExceeded"
        | "InstanceLimitExceeded"
        | "VcpuLimitExceeded"
        | "Unsupported"
        | "InsufficientFreeAddressesInSubnet" => CloudErrorKind::Capacity,
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "SlowDown" => {
            CloudErrorKind::Throttled
        }
        "AuthFailure"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "OptInRequired"
        | "Blocked" => CloudErrorKind::Auth,
        c if c.starts_with("Invalid")
            || c.starts_with("Missing")
            || c == "IdempotentParameterMismatch" =>
        {
            CloudErrorKind::Invalid
        }
        _ if status == 503 => CloudErrorKind::Throttled,
        _ => CloudErrorKind::Other,
    }
}

/// First `<Code>` and `<Message>` anywhere in an error document.
fn parse_error(xml: &str) -> (String, String) {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut code = String::new();
    let mut message = String::new();
    let mut cur: Option<&'static str> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                cur = match e.name().as_ref() {
                    b"Code" if code.is_empty() => Some("code"),
                    b"Message" if message.is_empty() => Some("message"),
                    _ => None,
                }
            }
            Ok(Event::Text(t)) => {
                let s = t.unescape().map(|c| c.into_owned()).unwrap_or_default();
                match cur {
                    Some("code") => code.push_str(&s),
                    Some("message") => message.push_str(&s),
                    _ => {}
                }
            }
            Ok(Event::End(_)) => cur = None,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    (code.trim().to_string(), message.trim().to_string())
}

/// Walk an XML document, calling `f(path, text)` for every text node, where `path` is the
/// stack of element names (the `item` levels included).
enum Ev<'a> {
    Start(&'a [String]),
    Text(&'a [String], &'a str),
}

fn walk(xml: &str, mut f: impl FnMut(Ev<'_>)) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                stack.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                if stack.len() > 64 {
                    return Err("XML nested too deeply".into());
                }
                f(Ev::Start(&stack));
            }
            Ok(Event::End(_)) => {
                stack.pop();
            }
            Ok(Event::Text(t)) => {
                let s = t.unescape().map_err(|e| format!("bad XML text: {e}"))?;
                f(Ev::Text(&stack, &s));
            }
            Ok(Event::Eof) => return Ok(()),
            Err(e) => return Err(format!("invalid XML: {e}")),
            _ => {}
        }
    }
}

#[derive(Default)]
struct Partial {
    id: String,
    state: String,
    itype: String,
    launch: String,
    lifecycle: String,
    tags: Vec<(String, String)>,
}

/// Parse a DescribeInstances (or RunInstances) answer: instances and the next page token.
pub fn parse_instances(xml: &str) -> Result<(Vec<Instance>, Option<String>), String> {
    let mut out: Vec<Partial> = Vec::new();
    let mut next = None;
    let mut inst_depth: Option<usize> = None;
    walk(xml, |ev| match ev {
        Ev::Start(path) => {
            let n = path.len();
            if n >= 2 && path[n - 1] == "item" && path[n - 2] == "instancesSet" {
                inst_depth = Some(n);
                out.push(Partial::default());
            }
        }
        Ev::Text(path, text) => {
            if path.len() == 2 && path[1] == "nextToken" && !text.trim().is_empty() {
                next = Some(text.trim().to_string());
            }
            let Some(d) = inst_depth else { return };
            if path.len() < d || path[d - 1] != "item" {
                return;
            }
            let Some(p) = out.last_mut() else { return };
            let rel: Vec<&str> = path[d..].iter().map(String::as_str).collect();
            match rel.as_slice() {
                ["instanceId"] => p.id.push_str(text),
                ["instanceType"] => p.itype.push_str(text),
                ["launchTime"] => p.launch.push_str(text),
                ["instanceState", "name"] => p.state.push_str(text),
                ["instanceLifecycle"] => p.lifecycle.push_str(text),
                ["tagSet", "item", "key"] => p.tags.push((text.to_string(), String::new())),
                ["tagSet", "item", "value"] => {
                    if let Some(t) = p.tags.last_mut() {
                        t.1.push_str(text);
                    }
                }
                _ => {}
            }
        }
    })?;
    let instances = out
        .into_iter()
        .filter(|p| !p.id.trim().is_empty())
        .map(|p| Instance {
            id: p.id.trim().to_string(),
            state: InstanceState::parse(p.state.trim()),
            instance_type: p.itype.trim().to_string(),
            launch_time_ms: parse_iso8601_ms(&p.launch),
            spot: p.lifecycle.trim() == "spot",
            tags: p.tags.into_iter().collect::<BTreeMap<_, _>>(),
        })
        .collect();
    Ok((instances, next))
}

/// Parse DescribeImages: the id of the image with the newest `creationDate`.
pub fn parse_newest_image(xml: &str) -> Result<Option<String>, String> {
    let mut images: Vec<(String, String)> = Vec::new();
    walk(xml, |ev| match ev {
        Ev::Start(path) => {
            let n = path.len();
            if n >= 2 && path[n - 1] == "item" && path[n - 2] == "imagesSet" {
                images.push((String::new(), String::new()));
            }
        }
        Ev::Text(path, text) => {
            let n = path.len();
            if n >= 3 && path[n - 2] == "item" && path[n - 3] == "imagesSet" {
                if let Some(last) = images.last_mut() {
                    match path[n - 1].as_str() {
                        "imageId" => last.0.push_str(text.trim()),
                        "creationDate" => last.1.push_str(text.trim()),
                        _ => {}
                    }
                }
            }
        }
    })?;
    Ok(images
        .into_iter()
        .filter(|(id, _)| !id.is_empty())
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)))
        .map(|(id, _)| id))
}

/// The query parameters of RunInstances for one launch.
pub fn run_instances_params(spec: &LaunchSpec) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: &str| p.push((k.to_string(), v.to_string()));
    match &spec.image {
        ImageRef::Ami(id) => add("ImageId", id),
        ImageRef::LaunchTemplate {
            id_or_name,
            version,
        } => {
            if id_or_name.starts_with("lt-") {
                add("LaunchTemplate.LaunchTemplateId", id_or_name);
            } else {
                add("LaunchTemplate.LaunchTemplateName", id_or_name);
            }
            add("LaunchTemplate.Version", version);
        }
    }
    add("InstanceType", &spec.offering.instance_type);
    add("MinCount", "1");
    add("MaxCount", "1");
    add("ClientToken", &spec.client_token);
    add("InstanceInitiatedShutdownBehavior", "terminate");
    if let Some(s) = &spec.subnet {
        add("SubnetId", s);
    }
    for (i, g) in spec.security_groups.iter().enumerate() {
        add(&format!("SecurityGroupId.{}", i + 1), g);
    }
    if let Some(prof) = &spec.instance_profile {
        if prof.starts_with("arn:") {
            add("IamInstanceProfile.Arn", prof);
        } else {
            add("IamInstanceProfile.Name", prof);
        }
    }
    if spec.offering.market == Market::Spot {
        add("InstanceMarketOptions.MarketType", "spot");
        add(
            "InstanceMarketOptions.SpotOptions.SpotInstanceType",
            "one-time",
        );
        add(
            "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior",
            "terminate",
        );
    }
    add("TagSpecification.1.ResourceType", "instance");
    for (i, (k, v)) in spec.tags.iter().enumerate() {
        add(&format!("TagSpecification.1.Tag.{}.Key", i + 1), k);
        add(&format!("TagSpecification.1.Tag.{}.Value", i + 1), v);
    }
    p
}

impl Ec2Provider {
    /// `creds`: static [`Credentials`] or a shared source (see
    /// [`credential_source`](super::credentials::credential_source)); asked for the current
    /// keys before every request.
    pub fn new(cfg: &AwsConfig, creds: impl Into<SharedCredentials>) -> Result<Self, String> {
        let url = cfg
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://ec2.{}.amazonaws.com/", cfg.region));
        let after = url.split_once("://").map(|x| x.1).unwrap_or("");
        let host = after.split('/').next().unwrap_or("").to_string();
        if host.is_empty() {
            return Err(format!("aws.endpoint `{url}` has no host"));
        }
        let agent = crate::tls::agent(cfg.timeout_ms, cfg.ca_file.as_deref())
            .map_err(|e| format!("aws.ca_file: {e}"))?;
        Ok(Ec2Provider {
            url,
            host,
            region: cfg.region.clone(),
            creds: creds.into(),
            agent,
        })
    }

    /// Any EC2 Query API action, signed; returns the XML answer. Used by `CloudProvider`
    /// methods, and by tests and tools to prepare fixtures (images, templates).
    pub fn call(&self, action: &str, params: &[(String, String)]) -> Result<String, CloudError> {
        let creds = self.creds.current().map_err(|e| CloudError {
            message: format!("{action}: {}", e.message),
            ..e
        })?;
        let mut all = vec![
            ("Action".to_string(), action.to_string()),
            ("Version".to_string(), API_VERSION.to_string()),
        ];
        all.extend_from_slice(params);
        let body = form_encode(&all);
        let amz_date = format_amz_date(now_ms());
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let mut headers = vec![
            ("content-type".to_string(), content_type.to_string()),
            ("host".to_string(), self.host.clone()),
            ("x-amz-date".to_string(), amz_date.clone()),
        ];
        if let Some(t) = &creds.session_token {
            headers.push(("x-amz-security-token".to_string(), t.expose().to_string()));
        }
        let auth = authorization(
            "POST",
            "/",
            "",
            &headers,
            body.as_bytes(),
            &self.region,
            "ec2",
            &creds,
            &amz_date,
        );
        let mut req = self
            .agent
            .post(&self.url)
            .set("Content-Type", content_type)
            .set("X-Amz-Date", &amz_date)
            .set("Authorization", &auth);
        if let Some(t) = &creds.session_token {
            req = req.set("X-Amz-Security-Token", t.expose());
        }
        match req.send_string(&body) {
            Ok(resp) => resp.into_string().map_err(|e| CloudError {
                kind: CloudErrorKind::Transport,
                code: "ReadError".into(),
                message: format!("{action}: reading the answer failed: {e}"),
            }),
            Err(ureq::Error::Status(status, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                let (code, message) = parse_error(&text);
                let code = if code.is_empty() {
                    format!("HTTP{status}")
                } else {
                    code
                };
                Err(CloudError {
                    kind: classify(&code, status),
                    message: format!("{action}: {message}"),
                    code,
                })
            }
            Err(ureq::Error::Transport(t)) => Err(CloudError {
                kind: CloudErrorKind::Transport,
                code: "Transport".into(),
                message: format!("{action}: cannot reach {}: {t}", self.url),
            }),
        }
    }
}

fn parse_err(action: &str, e: String) -> CloudError {
    CloudError {
        kind: CloudErrorKind::Other,
        code: "BadResponse".into(),
        message: format!("{action}: {e}"),
    }
}

impl CloudProvider for Ec2Provider {
    fn describe_owned(&self, fleet_id: &str) -> Result<Vec<Instance>, CloudError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _page in 0..100 {
            let mut p: Vec<(String, String)> = vec![
                ("Filter.1.Name".into(), format!("tag:{}", super::TAG_FLEET)),
                ("Filter.1.Value.1".into(), fleet_id.into()),
                ("Filter.2.Name".into(), "instance-state-name".into()),
            ];
            for (i, s) in ["pending", "running", "shutting-down", "stopping", "stopped"]
                .iter()
                .enumerate()
            {
                p.push((format!("Filter.2.Value.{}", i + 1), s.to_string()));
            }
            p.push(("MaxResults".into(), "1000".into()));
            if let Some(t) = &token {
                p.push(("NextToken".into(), t.clone()));
            }
            let xml = self.call("DescribeInstances", &p)?;
            let (mut list, next) =
                parse_instances(&xml).map_err(|e| parse_err("DescribeInstances", e))?;
            out.append(&mut list);
            match next {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
        Ok(out)
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<String, CloudError> {
        let mut params = run_instances_params(spec);
        params.push((
            "UserData".into(),
            base64::engine::general_purpose::STANDARD.encode(spec.user_data.expose()),
        ));
        let xml = self.call("RunInstances", &params)?;
        let (list, _) = parse_instances(&xml).map_err(|e| parse_err("RunInstances", e))?;
        list.into_iter()
            .next()
            .map(|i| i.id)
            .ok_or_else(|| parse_err("RunInstances", "the answer has no instance id".into()))
    }

    fn terminate(&self, instance_ids: &[String]) -> Result<(), CloudError> {
        if instance_ids.is_empty() {
            return Ok(());
        }
        let p: Vec<(String, String)> = instance_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (format!("InstanceId.{}", i + 1), id.clone()))
            .collect();
        self.call("TerminateInstances", &p).map(|_| ())
    }

    fn newest_image(&self, key: &str, value: &str) -> Result<String, CloudError> {
        let p = vec![
            ("Owner.1".to_string(), "self".to_string()),
            ("Filter.1.Name".to_string(), format!("tag:{key}")),
            ("Filter.1.Value.1".to_string(), value.to_string()),
            ("Filter.2.Name".to_string(), "state".to_string()),
            ("Filter.2.Value.1".to_string(), "available".to_string()),
        ];
        let xml = self.call("DescribeImages", &p)?;
        parse_newest_image(&xml)
            .map_err(|e| parse_err("DescribeImages", e))?
            .ok_or_else(|| CloudError {
                kind: CloudErrorKind::Invalid,
                code: "NoImage".into(),
                message: format!("no available image owned by this account has tag {key}={value}: build one (packer build ami/) or fix the pool's ami"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::Offering;

    const DESCRIBE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r-1</requestId>
  <reservationSet>
    <item>
      <reservationId>r-0a</reservationId>
      <instancesSet>
        <item>
          <instanceId>i-0abc</instanceId>
          <imageId>ami-1</imageId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <instanceType>c5.9xlarge</instanceType>
          <launchTime>2026-11-22T04:30:00.000Z</launchTime>
          <instanceLifecycle>spot</instanceLifecycle>
          <networkInterfaceSet><item><networkInterfaceId>eni-1</networkInterfaceId><tagSet><item><key>x</key><value>y</value></item></tagSet></item></networkInterfaceSet>
          <tagSet>
            <item><key>nectr:fleet-id</key><value>ci</value></item>
            <item><key>nectr:node</key><value>nectr-linux-ab</value></item>
            <item><key>empty</key><value/></item>
          </tagSet>
        </item>
        <item>
          <instanceId>i-0def</instanceId>
          <instanceState><code>0</code><name>pending</name></instanceState>
          <instanceType>c5.4xlarge</instanceType>
          <launchTime>2026-11-22T04:31:00Z</launchTime>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
  <nextToken>page2</nextToken>
</DescribeInstancesResponse>"#;

    #[test]
    fn describe_parses() {
        let (list, next) = parse_instances(DESCRIBE).unwrap();
        assert_eq!(next.as_deref(), Some("page2"));
        assert_eq!(list.len(), 2);
        let a = &list[0];
        assert_eq!(a.id, "i-0abc");
        assert_eq!(a.state, InstanceState::Running);
        assert!(a.spot);
        assert_eq!(a.instance_type, "c5.9xlarge");
        assert_eq!(a.launch_time_ms, parse_iso8601_ms("2026-11-22T04:30:00Z"));
        assert_eq!(a.tag("nectr:node"), Some("nectr-linux-ab"));
        assert_eq!(a.tag("empty"), Some(""));
        assert_eq!(
            a.tag("x"),
            None,
            "network interface tags are not instance tags"
        );
        assert_eq!(list[1].state, InstanceState::Pending);
        assert!(!list[1].spot);
        assert!(parse_instances("<a><b></a>").is_err());
    }

    #[test]
    fn error_documents() {
        let xml = "<Response><Errors><Error><Code>InsufficientInstanceCapacity</Code><Message>We currently do not have sufficient c5.9xlarge capacity</Message></Error></Errors><RequestID>x</RequestID></Response>";
        let (c, m) = parse_error(xml);
        assert_eq!(c, "InsufficientInstanceCapacity");
        assert!(m.starts_with("We currently"));
        assert_eq!(classify(&c, 500), CloudErrorKind::Capacity);
        assert_eq!(
            classify("RequestLimitExceeded", 503),
            CloudErrorKind::Throttled
        );
        assert_eq!(
            classify("InvalidAMIID.NotFound", 400),
            CloudErrorKind::Invalid
        );
        assert_eq!(classify("AuthFailure", 401), CloudErrorKind::Auth);
        assert_eq!(classify("", 503), CloudErrorKind::Throttled);
    }

    #[test]
    fn images() {
        let xml = "<DescribeImagesResponse><imagesSet><item><imageId>ami-old</imageId><creationDate>2026-01-01T00:00:00.000Z</creationDate></item><item><imageId>ami-new</imageId><creationDate>2026-06-01T00:00:00.000Z</creationDate></item></imagesSet></DescribeImagesResponse>";
        assert_eq!(parse_newest_image(xml).unwrap().as_deref(), Some("ami-new"));
        assert_eq!(parse_newest_image("<r><imagesSet/></r>").unwrap(), None);
    }

    #[test]
    fn run_params() {
        let mut tags = BTreeMap::new();
        tags.insert("nectr:pool".to_string(), "linux".to_string());
        let spec = LaunchSpec {
            client_token: "tok".into(),
            image: ImageRef::LaunchTemplate {
                id_or_name: "lt-1".into(),
                version: "$Latest".into(),
            },
            offering: Offering {
                instance_type: "c5.xlarge".into(),
                market: Market::Spot,
            },
            subnet: Some("subnet-1".into()),
            security_groups: vec!["sg-1".into(), "sg-2".into()],
            instance_profile: Some("arn:aws:iam::1:instance-profile/x".into()),
            user_data: Secret::new("#!/bin/sh"),
            tags,
        };
        let p: BTreeMap<String, String> = run_instances_params(&spec).into_iter().collect();
        assert_eq!(p["LaunchTemplate.LaunchTemplateId"], "lt-1");
        assert_eq!(p["ClientToken"], "tok");
        assert_eq!(p["SecurityGroupId.2"], "sg-2");
        assert_eq!(
            p["IamInstanceProfile.Arn"],
            "arn:aws:iam::1:instance-profile/x"
        );
        assert_eq!(p["InstanceMarketOptions.MarketType"], "spot");
        assert_eq!(p["TagSpecification.1.Tag.1.Key"], "nectr:pool");
        assert!(
            !p.contains_key("UserData"),
            "user data is added at send time only"
        );
    }
}
