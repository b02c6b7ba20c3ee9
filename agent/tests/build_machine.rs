//! The build machine (`ami/`): the boot script against a fake IMDSv2 and moto's SSM on
//! loopback, bringing a real nectr-agent online at the controller simulator with the secret
//! it fetched; its refusals; the units (systemd-analyze); every script (shellcheck); the
//! Packer template (Debian's packer validate).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::machines::*;
use support::*;

const NODE: &str = "nectr-c5-0f3a9c2b7d1e4a56";
const SECRET: &str = "4f2c0e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e";

/// A boot script run: its scratch layout and the stand-ins for root's commands.
struct Boot {
    dir: PathBuf,
    etc: PathBuf,
    work: PathBuf,
    calls: PathBuf,
}

impl Boot {
    /// Fake sysfs with an EBS root disk and `stores` NVMe instance-store disks; stand-ins
    /// for systemctl, mkfs.ext4, mount and mountpoint that record their arguments. The
    /// systemctl stand-in starts nectr-agent as nectr-agent.service would: agent.env as its
    /// environment, `-secret @<etc>/secret`, the work directory.
    fn new(stores: usize) -> Boot {
        let dir = scratch("boot");
        let (etc, work, bin, sys) = (
            dir.join("etc"),
            dir.join("work"),
            dir.join("bin"),
            dir.join("sys"),
        );
        std::fs::create_dir_all(&bin).unwrap();
        let disk = |name: &str, model: &str| {
            let d = sys.join("block").join(name).join("device");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("model"), format!("{model:<40}\n")).unwrap();
        };
        disk("nvme0n1", "Amazon Elastic Block Store");
        for i in 0..stores {
            disk(
                &format!("nvme{}n1", i + 1),
                "Amazon EC2 NVMe Instance Storage",
            );
        }
        let calls = dir.join("calls.log");
        for tool in ["mkfs.ext4", "mount"] {
            script(
                &bin.join(tool),
                &format!("#!/bin/sh\necho \"{tool} $*\" >> '{}'\n", calls.display()),
            );
        }
        script(&bin.join("mountpoint"), "#!/bin/sh\nexit 1\n");
        script(
            &bin.join("systemctl"),
            &format!(
                "#!/bin/sh\necho \"systemctl $*\" >> '{calls}'\n\
                 [ \"$*\" = 'start --no-block nectr-agent.service' ] || exit 0\n\
                 ( set -a; . '{etc}/agent.env'; set +a\n\
                   exec '{agent}' -secret @'{etc}/secret' -workDir '{work}' -noReconnect ) \
                   > '{dir}/agent.log' 2>&1 &\n\
                 echo $! > '{dir}/agent.pid'\n",
                calls = calls.display(),
                etc = etc.display(),
                agent = env!("CARGO_BIN_EXE_nectr-agent"),
                work = work.display(),
                dir = dir.display(),
            ),
        );
        Boot {
            dir,
            etc,
            work,
            calls,
        }
    }

    fn command(&self, imds: &FakeImds, moto: &Moto) -> Command {
        let path = format!(
            "{}:{}:/usr/bin:/bin:/usr/sbin:/sbin",
            self.dir.join("bin").display(),
            aws_peers_bin().display()
        );
        let mut c = Command::new(repo_root().join("ami/files/nectr-boot"));
        c.env_clear()
            .env("PATH", path)
            .env("HOME", &self.dir)
            .env("AWS_CONFIG_FILE", self.dir.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.join("no-aws-credentials"),
            )
            .env("NECTR_IMDS_ENDPOINT", &imds.url)
            .env("NECTR_AWS_ENDPOINT_URL", &moto.url)
            .env("NECTR_ETC_DIR", &self.etc)
            .env("NECTR_WORK_DIR", &self.work)
            .env("NECTR_SYSFS", self.dir.join("sys"))
            .env("NECTR_SECRET_WAIT_SECONDS", "0")
            // No adoption wait: an instance whose tags lack nectr:node is refused at once
            // (the default 300 s wait made one case of this suite take five minutes).
            .env("NECTR_TAG_WAIT_SECONDS", "0");
        c
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(&self.calls).unwrap_or_default()
    }
}

impl Drop for Boot {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("agent.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn out(o: &Output) -> String {
    format!(
        "status {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn instance(user_data: &str, tags: &[(&str, &str)]) -> Instance {
    Instance {
        instance_id: "i-0123456789abcdef0".into(),
        region: "us-east-1".into(),
        user_data: Some(user_data.into()),
        tags: Some(
            tags.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        role: Some("nectr-build-machine".into()),
        ..Default::default()
    }
}

#[test]
fn boot_reads_imdsv2_fetches_the_secret_from_ssm_and_the_agent_goes_online() {
    let mut sim = Simulator::start(&["--node", &format!("{NODE}={SECRET}")]);
    let moto = Moto::start();
    moto.put_secret(NODE, SECRET);
    // The fleet's user-data (a shebang and a comment around the settings, as cloud-init
    // would leave them alone); the pool only in the tags.
    let user_data = format!(
        "#!/bin/false\n# nectr-fleet\nNECTR_JENKINS_URL={}\nNECTR_NODE_NAME={NODE}\r\n\
         NECTR_WEBSOCKET=true\nNECTR_PUSH_BUCKET=nectr_deploy\n",
        sim.url
    );
    let imds = FakeImds::start(instance(
        &user_data,
        &[
            ("nectr:node", NODE),
            ("nectr:pool", "c5"),
            ("nectr:jenkins-url", &sim.url),
            ("Name", "nectr c5"),
        ],
    ));
    let boot = Boot::new(1);
    let o = boot.command(&imds, &moto).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let said = out(&o);
    assert!(said.contains("started nectr-agent.service"), "{said}");
    assert!(!said.contains(SECRET), "the secret was printed: {said}");

    // The secret: root-only file, exactly the parameter's value.
    use std::os::unix::fs::PermissionsExt;
    let secret = boot.etc.join("secret");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "secret file mode {mode:o}");
    assert_eq!(std::fs::read_to_string(&secret).unwrap().trim(), SECRET);
    // The unit's environment: the inbound-agent image's variables, no secret.
    let env = std::fs::read_to_string(boot.etc.join("agent.env")).unwrap();
    for line in [
        format!("JENKINS_URL={}", sim.url),
        format!("JENKINS_AGENT_NAME={NODE}"),
        "JENKINS_WEB_SOCKET=true".into(),
        "NECTR_POOL=c5".into(),
        "NECTR_PUSH_BUCKET=nectr_deploy".into(),
        "AWS_REGION=us-east-1".into(),
        "NECTR_INSTANCE_ID=i-0123456789abcdef0".into(),
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "agent.env lacks {line:?}:\n{env}"
        );
    }
    assert!(!env.contains(SECRET));
    // IMDSv2 only: a session token, and no request without it.
    {
        let log = imds.log.lock().unwrap();
        assert!(log.token_puts >= 1);
        assert_eq!(log.unauthorized, 0, "a request without the token");
        assert!(log.gets.iter().any(|g| g == "/latest/user-data"));
        assert!(log
            .gets
            .iter()
            .any(|g| g == "/latest/meta-data/tags/instance/nectr:pool"));
        assert!(
            log.gets
                .iter()
                .any(|g| g == "/latest/meta-data/iam/security-credentials/nectr-build-machine"),
            "the AWS CLI used the instance role: {:?}",
            log.gets
        );
    }
    // The instance store became the work directory, then the unit was started.
    let calls = boot.calls();
    assert!(
        calls.contains(&format!(
            "mkfs.ext4 -q -F -E nodiscard -L nectr-work /dev/nvme1n1\nmount -o noatime /dev/nvme1n1 {}\n",
            boot.work.display()
        )),
        "{calls}"
    );
    assert!(
        calls.ends_with("systemctl start --no-block nectr-agent.service\n"),
        "{calls}"
    );
    // The agent connected with the secret from SSM.
    let online = sim.wait_for("online", Duration::from_secs(60));
    assert_eq!(online["node"], NODE);
    let connected = sim
        .seen
        .iter()
        .find(|e| e["event"] == "connected")
        .expect("connected event");
    assert_eq!(connected["transport"], "websocket");
}

#[test]
fn boot_waits_for_the_secret_and_says_which_one_is_missing() {
    let moto = Moto::start();
    let imds = FakeImds::start(instance(
        "NECTR_JENKINS_URL=http://127.0.0.1:9/\nNECTR_NODE_NAME=nectr-c5-late\nNECTR_WEBSOCKET=false\n",
        &[],
    ));
    // Not there, and no time to wait: a clear failure, nothing written, nothing started.
    let boot = Boot::new(0);
    let o = boot.command(&imds, &moto).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let said = out(&o);
    assert!(
        said.contains("cannot read the agent secret /nectr/agents/nectr-c5-late/secret")
            && said.contains("ParameterNotFound"),
        "{said}"
    );
    assert!(!boot.etc.join("secret").exists());
    assert!(!boot.calls().contains("systemctl"), "{}", boot.calls());

    // The fleet writes it while the script waits.
    let log = boot.dir.join("boot.log");
    let mut child = boot
        .command(&imds, &moto)
        .env("NECTR_SECRET_WAIT_SECONDS", "120")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_text(&log, "is not readable yet", Duration::from_secs(60));
    moto.put_secret("nectr-c5-late", "late-secret-value");
    let status = child.wait().unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(0), "{said}");
    assert_eq!(
        std::fs::read_to_string(boot.etc.join("secret"))
            .unwrap()
            .trim(),
        "late-secret-value"
    );
    let env = std::fs::read_to_string(boot.etc.join("agent.env")).unwrap();
    assert!(env.contains("JENKINS_WEB_SOCKET=false\n"), "{env}");
    assert!(said.contains("no instance store"), "{said}");
    assert!(!boot.calls().contains("mkfs"), "{}", boot.calls());
}

#[test]
fn boot_refuses_missing_or_conflicting_settings() {
    let moto = Moto::start();
    moto.put_secret(NODE, SECRET);
    /// User-data, instance tags, what the refusal says.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "NECTR_JENKINS_URL=https://ci.example.com/\n",
            &[],
            "no node name: NECTR_NODE_NAME",
        ),
        (
            "NECTR_JENKINS_URL=https://ci.example.com/\nNECTR_NODE_NAME=nectr-c5-0f3a9c2b7d1e4a56\n",
            &[("nectr:node", "nectr-c5-other")],
            "disagree",
        ),
        (
            "NECTR_JENKINS_URL=ftp://ci/\nNECTR_NODE_NAME=n\n",
            &[],
            "must be an http:// or https:// URL",
        ),
        (
            "NECTR_JENKINS_URL=https://ci/\nNECTR_NODE_NAME=n;reboot\n",
            &[],
            "NECTR_NODE_NAME may hold only",
        ),
        (
            "NECTR_JENKINS_URL=https://ci/\nNECTR_NODE_NAME=n\nNECTR_WEBSOCKET=yes\n",
            &[],
            "NECTR_WEBSOCKET must be true or false",
        ),
    ];
    for (user_data, tags, expected) in cases {
        let imds = FakeImds::start(instance(user_data, tags));
        let boot = Boot::new(0);
        let o = boot.command(&imds, &moto).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{user_data}: {}", out(&o));
        assert!(out(&o).contains(expected), "{user_data}: {}", out(&o));
        assert!(!boot.etc.join("secret").exists());
        assert!(!boot.calls().contains("systemctl"));
    }
}

/// The spot watcher (`ami/files/nectr-spot-watch`) against the fake IMDSv2 and moto's EC2:
/// it tags its own instance `nectr:rebalance` and `nectr:interruption` with the notices'
/// times (what nectr-fleet reads), then exits; without a notice it tags nothing.
#[test]
fn spot_watch_tags_its_own_instance_with_the_notices() {
    let moto = Moto::start();
    let run = moto.ec2(
        "RunInstances",
        &[
            ("ImageId", "ami-12345678"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
        ],
    );
    let id = run
        .split("<instanceId>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("instance id in RunInstances answer")
        .to_string();
    let tags = |id: &str| {
        moto.ec2(
            "DescribeTags",
            &[("Filter.1.Name", "resource-id"), ("Filter.1.Value.1", id)],
        )
    };
    let dir = scratch("spot-watch");
    let watch = |imds: &FakeImds, rounds: &str| {
        let path = format!("{}:/usr/bin:/bin", aws_peers_bin().display());
        Command::new(repo_root().join("ami/files/nectr-spot-watch"))
            .env_clear()
            .env("PATH", path)
            .env("HOME", &dir)
            .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.join("no-aws-credentials"),
            )
            .env("NECTR_IMDS_ENDPOINT", &imds.url)
            .env("NECTR_AWS_ENDPOINT_URL", &moto.url)
            .env("NECTR_SPOT_POLL_SECONDS", "0")
            .env("NECTR_SPOT_ROUNDS", rounds)
            .output()
            .expect("run nectr-spot-watch")
    };
    let mut inst = Instance {
        instance_id: id.clone(),
        region: "us-east-1".into(),
        role: Some("nectr-build-machine".into()),
        ..Default::default()
    };
    // No notice: a few rounds, no tag.
    let imds = FakeImds::start(inst.clone());
    let o = watch(&imds, "3");
    assert!(o.status.success(), "{}", out(&o));
    assert!(!tags(&id).contains("nectr:"), "{}", tags(&id));
    // A rebalance recommendation: tagged, and it keeps watching.
    inst.rebalance = Some("{\"noticeTime\": \"2026-12-04T00:00:00Z\"}".into());
    let imds = FakeImds::start(inst.clone());
    let o = watch(&imds, "2");
    assert!(o.status.success(), "{}", out(&o));
    let t = tags(&id);
    assert!(
        t.contains("<key>nectr:rebalance</key>")
            && t.contains("<value>2026-12-04T00:00:00Z</value>"),
        "{t}\n{}",
        out(&o)
    );
    assert!(!t.contains("nectr:interruption"), "{t}");
    // The interruption notice: tagged with its action time, and the watcher is done.
    inst.spot_action =
        Some("{\"action\": \"terminate\", \"time\": \"2026-12-04T00:02:00Z\"}".into());
    let imds = FakeImds::start(inst);
    let o = watch(&imds, "5");
    assert!(o.status.success(), "{}", out(&o));
    let t = tags(&id);
    assert!(
        t.contains("<key>nectr:interruption</key>")
            && t.contains("<value>2026-12-04T00:02:00Z</value>"),
        "{t}\n{}",
        out(&o)
    );
    let said = out(&o);
    assert!(said.contains("spot interruption notice"), "{said}");
    // Neither the IMDS session token nor the role's keys are ever printed.
    assert!(
        !said.contains("DO-NOT-PRINT"),
        "a secret in the watcher's output: {said}"
    );
    assert_eq!(imds.log.lock().unwrap().unauthorized, 0);
}

/// The units as installed on the image: agent/dist's unit with the build machine's drop-in,
/// and nectr-boot.service, verified together (drop-ins are read from the unit path).
#[test]
fn the_build_machine_units_pass_systemd_analyze_verify() {
    let dir = scratch("ami-units");
    let files = repo_root().join("ami/files");
    let agent = std::fs::read_to_string(repo_root().join("agent/dist/nectr-agent.service"))
        .unwrap()
        .replace(
            "/usr/local/bin/nectr-agent",
            env!("CARGO_BIN_EXE_nectr-agent"),
        );
    std::fs::write(dir.join("nectr-agent.service"), agent).unwrap();
    std::fs::create_dir_all(dir.join("nectr-agent.service.d")).unwrap();
    let dropin =
        std::fs::read_to_string(files.join("nectr-agent.service.d/build-machine.conf")).unwrap();
    let boot = std::fs::read_to_string(files.join("nectr-boot.service"))
        .unwrap()
        .replace(
            "/usr/local/sbin/nectr-boot",
            &files.join("nectr-boot").display().to_string(),
        );
    std::fs::write(dir.join("nectr-boot.service"), &boot).unwrap();
    let spot = std::fs::read_to_string(files.join("nectr-spot-watch.service"))
        .unwrap()
        .replace(
            "/usr/local/sbin/nectr-spot-watch",
            &files.join("nectr-spot-watch").display().to_string(),
        );
    std::fs::write(dir.join("nectr-spot-watch.service"), &spot).unwrap();
    let verify = |dropin: &str| {
        std::fs::write(dir.join("nectr-agent.service.d/build-machine.conf"), dropin).unwrap();
        let o = Command::new("systemd-analyze")
            .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
            .args(["verify", "--man=no"])
            .arg(dir.join("nectr-agent.service"))
            .arg(dir.join("nectr-boot.service"))
            .arg(dir.join("nectr-spot-watch.service"))
            .output()
            .expect("systemd-analyze (scripts/test installs Debian's systemd)");
        (o.status.success(), out(&o))
    };
    let (ok, said) = verify(&dropin);
    assert!(
        ok && !said.contains(".service") && !said.contains(".conf"),
        "{said}"
    );
    // The drop-in is read: a bad key in it is reported.
    let (_, said) = verify(&format!("{dropin}\nBogusKey=1\n"));
    assert!(
        said.contains("BogusKey"),
        "the drop-in was not checked: {said}"
    );
    for line in [
        "After=nectr-boot.service docker.service",
        "ConditionPathExists=/etc/nectr-agent/secret",
        "RequiresMountsFor=/var/lib/nectr-agent",
    ] {
        assert!(dropin.lines().any(|l| l == line), "drop-in lacks {line:?}");
    }
}

fn scripts_of(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            scripts_of(&p, out);
        } else if std::fs::read(&p)
            .map(|b| {
                b.starts_with(b"#!/bin/sh")
                    || b.starts_with(b"#!/usr/bin/env bash")
                    || b.starts_with(b"#!/bin/bash")
            })
            .unwrap_or(false)
        {
            out.push(p);
        }
    }
}

/// Every shell script of the machines around the agent (ami/, jenkins-config/) and the
/// test-peer installer passes shellcheck.
#[test]
fn every_machine_script_passes_shellcheck() {
    let mut files = vec![repo_root().join("scripts/fleet-test-peers")];
    for d in ["ami", "jenkins-config"] {
        scripts_of(&repo_root().join(d), &mut files);
    }
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("ami/files/nectr-boot")),
        "{files:?}"
    );
    let (ok, said) = shellcheck(&files);
    assert!(ok, "shellcheck on {} scripts:\n{said}", files.len());
    // The check can fail.
    let bad = scratch("shellcheck").join("bad.sh");
    std::fs::write(&bad, "#!/bin/sh\nrm -rf $1/*\n").unwrap();
    let (ok, said) = shellcheck(&[bad]);
    assert!(!ok && said.contains("SC2086"), "{said}");
}

/// `packer validate` (Debian's 1.6.6: the template without plugins.pkr.hcl, whose
/// required_plugins it predates) with stand-in binaries; and it catches a typo.
#[test]
fn the_packer_template_validates() {
    let packer = debian_tool("packer", "packer");
    let ami = repo_root().join("ami");
    let bin = env!("CARGO_BIN_EXE_nectr-agent");
    let validate = |file: &Path| {
        let o = Command::new(&packer)
            .env("CHECKPOINT_DISABLE", "1")
            .env("HOME", scratch("packer-home"))
            .current_dir(file.parent().unwrap())
            .args(["validate", "-var"])
            .arg(format!("agent_binary={bin}"))
            .arg("-var")
            .arg(format!("push_binary={bin}"))
            .arg(file)
            .output()
            .expect("run packer");
        (o.status.success(), out(&o))
    };
    let (ok, said) = validate(&ami.join("build-machine.pkr.hcl"));
    assert!(ok, "packer validate: {said}");
    let o = Command::new(&packer)
        .args(["fmt", "-check", "-diff"])
        .arg(ami.join("build-machine.pkr.hcl"))
        .output()
        .unwrap();
    assert!(o.status.success(), "packer fmt: {}", out(&o));
    // The check can fail: a typo in a copy laid out like the repository.
    let copy = scratch("packer-typo");
    std::fs::create_dir_all(copy.join("ami")).unwrap();
    std::fs::create_dir_all(copy.join("agent")).unwrap();
    for (link, target) in [
        ("ami/files", ami.join("files")),
        ("ami/provision", ami.join("provision")),
        ("agent/dist", repo_root().join("agent/dist")),
    ] {
        std::os::unix::fs::symlink(target, copy.join(link)).unwrap();
    }
    let typo = copy.join("ami/build-machine.pkr.hcl");
    std::fs::write(
        &typo,
        std::fs::read_to_string(ami.join("build-machine.pkr.hcl"))
            .unwrap()
            .replace(
                "instance_type   = var.instance_type",
                "instance_typo   = var.instance_type",
            ),
    )
    .unwrap();
    let (ok, said) = validate(&typo);
    assert!(!ok && said.contains("instance_typo"), "{said}");
    // The plugin block sits alone, as newer Packer needs it.
    let plugins = std::fs::read_to_string(ami.join("plugins.pkr.hcl")).unwrap();
    assert!(
        plugins.contains("required_plugins") && plugins.contains("github.com/hashicorp/amazon")
    );
}
