use super::*;

const EXAMPLE: &str = include_str!("../../fleet.example.toml");

fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
    load_str(text, Path::new("/etc/nectr"))
}

#[test]
fn example_is_valid() {
    let c = load(EXAMPLE).expect("example config must be valid");
    assert_eq!(c.fleet_id, "ci-prod");
    assert_eq!(c.poll_interval_ms, 5_000);
    assert_eq!(c.jenkins.url, "https://ci.example.com/");
    assert_eq!(c.pools.len(), 2);
    let linux = &c.pools[0];
    assert_eq!(linux.instance_types[0].executors, 8);
    assert_eq!(linux.instance_types[1].executors, 4);
    assert_eq!(linux.purchase, Purchase::SpotThenOnDemand);
    assert_eq!(
        linux.image,
        ImageSource::NewestTagged {
            key: "nectr:image".into(),
            value: "agent".into()
        }
    );
    assert_eq!(linux.idle_timeout_ms, 600_000);
    assert_eq!(linux.user_data, DEFAULT_USER_DATA);
    let gpu = &c.pools[1];
    assert_eq!(gpu.instance_types[0].executors, 1);
    assert_eq!(gpu.schedules.len(), 1);
    assert_eq!(gpu.schedules[0].min_instances, Some(1));
    assert!(matches!(gpu.image, ImageSource::LaunchTemplate { .. }));
}

fn errors_of(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn max_below_min_names_key_and_line() {
    let text = EXAMPLE.replace(
        "min_instances = 0\nmax_instances = 40",
        "min_instances = 5\nmax_instances = 2",
    );
    let errs = load(&text).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key, "pool[0] (name \"linux\").max_instances");
    let line = EXAMPLE
        .lines()
        .position(|l| l.starts_with("max_instances = 40"))
        .unwrap()
        + 1;
    assert_eq!(errs[0].line, Some(line));
    assert!(
        errs[0].message.contains("raise max_instances"),
        "{}",
        errs[0].message
    );
}

#[test]
fn unknown_key_is_rejected_with_line() {
    let text = EXAMPLE.replace(
        "idle_timeout = \"5m\"",
        "idle_timeout = \"5m\"\nidel_timeout = \"1m\"",
    );
    let errs = load(&text).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].message.contains("idel_timeout"), "{:?}", errs[0]);
    let line = text
        .lines()
        .position(|l| l.starts_with("idel_timeout"))
        .unwrap()
        + 1;
    assert_eq!(errs[0].line, Some(line));
    assert!(errs[0].key.starts_with("pool[1]"), "{:?}", errs[0]);
}

#[test]
fn syntax_error_has_line() {
    let text = EXAMPLE.replace("poll_interval = \"5s\"", "poll_interval = \"5s");
    let errs = load(&text).unwrap_err();
    assert_eq!(errs[0].line, Some(3));
}

#[test]
fn bad_values_each_reported() {
    let text = EXAMPLE
        .replace("fleet_id = \"ci-prod\"", "fleet_id = \"CI prod\"")
        .replace("poll_interval = \"5s\"", "poll_interval = \"5 minutes\"")
        .replace(
            "url = \"https://ci.example.com/\"",
            "url = \"ci.example.com\"",
        )
        .replace("purchase = \"on-demand\"", "purchase = \"cheap\"")
        .replace("labels = [\"gpu\"]", "labels = [\"gpu && x\"]");
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(errs[0].starts_with("line 2: fleet_id:"), "{}", errs[0]);
    assert!(errs[1].starts_with("line 3: poll_interval:"), "{}", errs[1]);
    assert!(errs[2].contains("jenkins.url"), "{}", errs[2]);
    assert!(errs
        .iter()
        .any(|e| e.contains("pool[1] (name \"gpu\").purchase")));
    assert!(errs
        .iter()
        .any(|e| e.contains("pool[1] (name \"gpu\").labels")));
}

#[test]
fn dollar_cap_needs_prices() {
    let text = EXAMPLE.replace("{ type = \"g5.xlarge\", price = 1.01 }", "\"g5.xlarge\"");
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("has no price"), "{}", errs[0]);
}

#[test]
fn user_data_placeholders_checked() {
    let text = EXAMPLE.replace(
        "NECTR_JENKINS_URL={{jenkins_url}}\nNECTR_NODE_NAME={{node_name}}",
        "NECTR_JENKINS_URL={{jenkins}}\nNECTR_NODE_NAME=x",
    );
    let errs = errors_of(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("unknown placeholder {{jenkins}}")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("must use {{node_name}}")),
        "{errs:?}"
    );
    // The secret never goes into user-data.
    let text = EXAMPLE.replace("NECTR_POOL={{pool}}", "NECTR_SECRET={{secret}}");
    let errs = errors_of(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("{{secret}} is no longer allowed") && e.contains("SSM")),
        "{errs:?}"
    );
}

#[test]
fn image_choice_checked() {
    let text = EXAMPLE.replace(
        "launch_template = { id = \"lt-0123456789abcdef0\", version = \"$Latest\" }",
        "",
    );
    let errs = errors_of(&text);
    assert!(errs[0].contains("no image"), "{errs:?}");
}

#[test]
fn duplicate_pool_names() {
    let text = EXAMPLE.replace("name = \"gpu\"", "name = \"linux\"");
    let errs = errors_of(&text);
    assert!(errs.iter().any(|e| e.contains("used twice")), "{errs:?}");
}

#[test]
fn diff_lists_changes_and_restart_keys() {
    let a = load(EXAMPLE).unwrap();
    let b_text = EXAMPLE
        .replace("max_instances = 40", "max_instances = 50")
        .replace("fleet_id = \"ci-prod\"", "fleet_id = \"ci-other\"");
    let b = load(&b_text).unwrap();
    let d = diff(&a, &b);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0].key, "fleet_id");
    assert!(d[0].needs_restart);
    assert_eq!(d[1].key, "pool linux.max_instances");
    assert_eq!(d[1].old, "40");
    assert_eq!(d[1].new, "50");
    assert!(!d[1].needs_restart);
    assert!(diff(&a, &a).is_empty());

    let mut c = a.clone();
    c.pools.remove(1);
    let d = diff(&a, &c);
    assert_eq!(d.len(), 1);
    assert!(d[0].new.contains("drained"));
}

#[test]
fn render_template() {
    let mut v = BTreeMap::new();
    v.insert("node_name", "n1".to_string());
    v.insert("pool", "p".to_string());
    assert_eq!(
        render_user_data("a {{node_name}} b {{ pool }} {{x", &v),
        "a n1 b p {{x"
    );
}

#[test]
fn relative_paths_resolve_against_config_dir() {
    let text = EXAMPLE.replace("/etc/nectr/jenkins-token", "token");
    let c = load(&text).unwrap();
    assert_eq!(c.jenkins.token_file, PathBuf::from("/etc/nectr/token"));
}

#[test]
fn lease_section() {
    let with = |s: &str| EXAMPLE.replace("[jenkins]", &format!("{s}\n[jenkins]"));
    let c = load(&with("[lease]\nbucket = \"nectr-state\"")).unwrap();
    let l = c.lease.clone().unwrap();
    assert_eq!((l.key.as_str(), l.ttl_ms), ("ci-prod/lease.json", 30_000));
    let errs = errors_of(&with("[lease]\nbucket = \"Bad_Bucket\"\nttl = \"10s\""));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].contains("lease.bucket"), "{errs:?}");
    assert!(
        errs[1].contains("lease.ttl: 10s is shorter than 3 poll intervals (15s)"),
        "{errs:?}"
    );
    let a = load(EXAMPLE).unwrap();
    let d = diff(&a, &c);
    assert!(d.iter().any(|x| x.key == "lease" && x.needs_restart));
}

#[test]
fn aws_credentials_source() {
    let with = |lines: &str| EXAMPLE.replace("[aws]\n", &format!("[aws]\n{lines}\n"));
    let c = load(EXAMPLE).unwrap();
    assert_eq!(c.aws.credentials, CredentialsMode::Chain, "default");
    assert_eq!(c.aws.imds_endpoint, None);
    assert_eq!(c.aws.profile, None);
    let c = load(&with("profile = \"ci\"")).unwrap();
    assert_eq!(c.aws.credentials, CredentialsMode::Chain);
    assert_eq!(c.aws.profile.as_deref(), Some("ci"));
    let c = load(&with("credentials_file = \"aws-keys\"")).unwrap();
    assert_eq!(
        c.aws.credentials,
        CredentialsMode::Static,
        "a file means static"
    );

    let c = load(&with("credentials = \"instance-role\"")).unwrap();
    assert_eq!(c.aws.credentials, CredentialsMode::InstanceRole);
    assert_eq!(c.aws.imds_endpoint, None);
    let c = load(&with(
        "credentials = \"instance-role\"\nimds_endpoint = \"http://127.0.0.1:8111/\"",
    ))
    .unwrap();
    assert_eq!(
        c.aws.imds_endpoint.as_deref(),
        Some("http://127.0.0.1:8111")
    );
    let c = load(&with(
        "credentials = \"static\"\ncredentials_file = \"aws-keys\"",
    ))
    .unwrap();
    assert_eq!(c.aws.credentials, CredentialsMode::Static);
    assert_eq!(
        c.aws.credentials_file,
        Some(PathBuf::from("/etc/nectr/aws-keys"))
    );
}

#[test]
fn instance_role_with_credentials_file_names_both_keys() {
    let text = EXAMPLE.replace(
        "[aws]\n",
        "[aws]\ncredentials_file = \"/etc/nectr/aws\"\ncredentials = \"instance-role\"\n",
    );
    let errs = load(&text).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key, "aws.credentials");
    let line = text
        .lines()
        .position(|l| l.starts_with("credentials = "))
        .unwrap()
        + 1;
    assert_eq!(errs[0].line, Some(line));
    assert!(
        errs[0].message.contains("credentials_file") && errs[0].message.contains("instance-role"),
        "{}",
        errs[0].message
    );
}

#[test]
fn unknown_credentials_value_and_bad_imds_endpoint() {
    let with = |lines: &str| EXAMPLE.replace("[aws]\n", &format!("[aws]\n{lines}\n"));
    let errs = errors_of(&with("credentials = \"iam\""));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("aws.credentials: `iam` is not a credential source: use \"chain\""),
        "{errs:?}"
    );
    let errs = errors_of(&with(
        "credentials = \"instance-role\"\nimds_endpoint = \"169.254.169.254\"",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("aws.imds_endpoint"), "{errs:?}");
    let errs = errors_of(&with(
        "credentials = \"instance-role\"\nimds_endpoint = \"http://169.254.169.254/latest\"",
    ));
    assert!(errs[0].contains("no path"), "{errs:?}");
    // The endpoint without the instance role would be silently unused: an error.
    let errs = errors_of(&with("imds_endpoint = \"http://127.0.0.1:8111\""));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("aws.imds_endpoint: is set, but aws.credentials is not \"instance-role\""),
        "{errs:?}"
    );
    // A profile outside the chain would be silently unused; a bad name is named.
    let errs = errors_of(&with("credentials = \"instance-role\"\nprofile = \"ci\""));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("aws.profile: is set (`ci`), but aws.credentials is not \"chain\""),
        "{errs:?}"
    );
    let errs = errors_of(&with("profile = \"a b\""));
    assert!(errs[0].contains("`a b` is not a profile name"), "{errs:?}");
    let errs = errors_of(&with("credentials = \"chain\"\ncredentials_file = \"k\""));
    assert!(
        errs[0].contains("\"chain\" and aws.credentials_file are both set"),
        "{errs:?}"
    );
}

#[test]
fn credential_keys_need_a_restart() {
    let a = load(EXAMPLE).unwrap();
    let b = load(&EXAMPLE.replace(
        "[aws]\n",
        "[aws]\ncredentials = \"instance-role\"\nimds_endpoint = \"http://127.0.0.1:8111\"\n",
    ))
    .unwrap();
    let d = diff(&a, &b);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(
        (d[0].key.as_str(), d[0].old.as_str(), d[0].new.as_str()),
        ("aws.credentials", "chain", "instance-role")
    );
    assert_eq!(d[1].key, "aws.imds_endpoint");
    assert!(d.iter().all(|c| c.needs_restart));
}

#[test]
fn ami_from_an_ssm_parameter() {
    let text = EXAMPLE.replacen(
        "ami = { tag = \"nectr:image\", value = \"agent\" }",
        "ami = { ssm = \"/nectr/ami/agent\" }",
        1,
    );
    let c = load(&text).expect("valid");
    assert_eq!(
        c.pools[0].image,
        ImageSource::Parameter {
            name: "/nectr/ami/agent".into()
        }
    );
    for (bad, says) in [
        ("", "ssm is empty"),
        ("nectr ami", "cannot hold"),
        ("/nectr//ami", "not a parameter path"),
        ("nectr/ami", "not a parameter path"),
        ("/ssm/ami", "reserved"),
    ] {
        let t = EXAMPLE.replacen(
            "ami = { tag = \"nectr:image\", value = \"agent\" }",
            &format!("ami = {{ ssm = \"{bad}\" }}"),
            1,
        );
        let errs = errors_of(&t);
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        assert!(
            errs[0].contains("pool[0] (name \"linux\").ami") && errs[0].contains(says),
            "{bad}: {errs:?}"
        );
    }
}

fn one_error(text: &str) -> ConfigError {
    let errs = load(text).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.into_iter().next().expect("one")
}

fn line_of(text: &str, starts: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(starts))
        .unwrap_or_else(|| panic!("no line starting with {starts:?}"))
        + 1
}

/// Issue 12 item 14: a missing section is reported as such, not at the first comment line.
#[test]
fn missing_jenkins_section_is_named_not_a_comment_line() {
    let start = EXAMPLE.find("[jenkins]").expect("jenkins");
    let end = EXAMPLE.find("[aws]").expect("aws");
    let text = format!("{}{}", &EXAMPLE[..start], &EXAMPLE[end..]);
    assert!(text.starts_with('#'), "the example starts with a comment");
    let e = one_error(&text);
    assert_eq!(e.key, "jenkins");
    assert_eq!(e.line, None);
    assert!(
        e.message.contains("the [jenkins] section is missing"),
        "{e}"
    );
    assert!(!e.to_string().contains('#'), "{e}");
}

#[test]
fn missing_key_of_a_table_is_reported_at_its_header() {
    let text = EXAMPLE.replace("url = \"https://ci.example.com/\"\n", "");
    let e = one_error(&text);
    assert_eq!(e.key, "jenkins.url");
    assert_eq!(e.line, Some(line_of(&text, "[jenkins]")));
    assert!(e.message.contains("`url` is missing in [jenkins]"), "{e}");
    // In a [[pool]]: the pool's header, and its name.
    let text = EXAMPLE.replacen("name = \"linux\"\n", "", 1);
    let e = one_error(&text);
    assert_eq!(e.key, "pool[0].name");
    assert_eq!(e.line, Some(line_of(&text, "[[pool]]")));
}

#[test]
fn type_errors_name_the_pool_and_what_was_expected() {
    let text = EXAMPLE.replacen("executors = 1\n", "executors = \"one\"\n", 1);
    let e = one_error(&text);
    assert_eq!(e.key, "pool[1] (name \"gpu\").executors");
    assert_eq!(e.line, Some(line_of(&text, "executors = \"one\"")));
    assert_eq!(e.message, "expected an integer, found string \"one\"");
    // An entry of a list of alternatives (serde cannot say which field was wrong): the
    // list, what each entry may be.
    let text = EXAMPLE.replace(
        "{ type = \"c5.4xlarge\", executors = 4, price = 0.68 }",
        "{ type = \"c5.4xlarge\", executors = 4, price = \"cheap\" }",
    );
    let e = one_error(&text);
    assert_eq!(e.key, "pool[0] (name \"linux\").instance_types", "{e}");
    assert!(e.message.contains("a number as price"), "{e}");
    // A top-level type error.
    let e = one_error(&EXAMPLE.replace("max_instances = 60 ", "max_instances = \"many\" "));
    assert_eq!(e.key, "max_instances");
    assert_eq!(e.line, Some(line_of(EXAMPLE, "max_instances = 60")));
}

#[test]
fn long_lines_and_values_are_shortened_in_messages() {
    let huge = "x".repeat(1 << 20);
    // A value of the wrong type, 1 MiB long.
    let text = EXAMPLE.replacen("executors = 1\n", &format!("executors = \"{huge}\"\n"), 1);
    let e = one_error(&text).to_string();
    assert!(e.len() < 400, "{} bytes", e.len());
    assert!(e.contains('…'), "{e}");
    // A syntax error far into a 1 MiB line: the line is echoed around the column.
    let text = EXAMPLE.replacen(
        "executors = 1\n",
        &format!("executors = 1\nremote_fs = \"{huge}\" x\n"),
        1,
    );
    let e = one_error(&text);
    assert_eq!(e.key, "(syntax)");
    let line = text
        .lines()
        .position(|l| l.ends_with("\" x"))
        .expect("line")
        + 1;
    assert_eq!(e.line, Some(line));
    let shown = e.to_string();
    assert!(
        shown.len() < 600,
        "{} bytes: {}",
        shown.len(),
        &shown[..600]
    );
    assert!(shown.contains('…') && shown.contains("\" x"), "{shown}");
}

#[test]
fn invalid_utf8_is_reported_with_offset_and_line() {
    let dir = std::env::temp_dir().join(format!("nectr-cfg-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("fleet.toml");
    let mut bytes = EXAMPLE.as_bytes().to_vec();
    let at = EXAMPLE.find("name = \"gpu\"").expect("gpu") + "name = \"g".len();
    bytes[at] = 0xFF;
    std::fs::write(&path, &bytes).expect("write");
    let e = load_file(&path).unwrap_err();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(e.errors.len(), 1);
    let err = &e.errors[0];
    assert_eq!(err.line, Some(line_of(EXAMPLE, "name = \"gpu\"")));
    assert!(
        err.message
            .contains(&format!("byte 0xFF at offset {at} (column 10)")),
        "{err}"
    );
    assert!(e.to_string().contains("fleet.toml:"), "{e}");
}

const SCHEDULE: &str = "\n[[pool.schedule]]\ncron = \"0 8 * * MON-FRI\"\nduration = \"11h\"\ntimezone = \"Europe/Berlin\"\nmin_instances = 2\nspare_executors = 4\n";

/// The example with one schedule on its first pool ("linux": 0..40 instances).
fn with_schedule(schedule: &str) -> String {
    EXAMPLE.replacen(
        "\n[[pool]]\nname = \"gpu\"",
        &format!("{schedule}\n[[pool]]\nname = \"gpu\""),
        1,
    )
}

#[test]
fn schedules_parse_and_show_in_the_diff() {
    let c = load(&with_schedule(SCHEDULE)).expect("valid");
    let s = &c.pools[0].schedules;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].cron, "0 8 * * MON-FRI");
    assert_eq!(s[0].duration_ms, 11 * 3_600_000);
    assert_eq!(
        (s[0].min_instances, s[0].spare_executors),
        (Some(2), Some(4))
    );
    assert_eq!(c.pools[1].schedules.len(), 1, "the example's own");
    let changes = diff(&load(EXAMPLE).expect("valid"), &c);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].key, "pool linux.schedule");
    assert!(!changes[0].needs_restart);
    assert!(changes[0]
        .new
        .contains("\"0 8 * * MON-FRI\" for 11h (Europe/Berlin)"));
}

#[test]
fn schedule_errors_name_the_pool_the_key_and_the_line() {
    for (bad, key, says) in [
        ("cron = \"0 25 * * *\"", "cron", "is not a cron expression"),
        ("cron = \"0 0 31 4 *\"", "cron", "never matches a date"),
        (
            "timezone = \"Europe/Berln\"",
            "timezone",
            "`Europe/Berln` is not a time zone name",
        ),
        ("duration = \"0s\"", "duration", "out of range"),
        (
            "min_instances = 41",
            "min_instances",
            "use 0 to the pool's max_instances (40)",
        ),
    ] {
        let field = bad.split(' ').next().expect("field");
        let original = SCHEDULE
            .lines()
            .find(|l| l.starts_with(&format!("{field} =")))
            .expect("line");
        let text = with_schedule(&SCHEDULE.replace(original, bad));
        let e = one_error(&text);
        assert_eq!(
            e.key,
            format!("pool[0] (name \"linux\").schedule[0].{key}"),
            "{e}"
        );
        assert_eq!(e.line, Some(line_of(&text, bad)), "{e}");
        assert!(e.message.contains(says), "{e}");
    }
    // Neither value: the schedule would change nothing.
    let text = with_schedule(
        &SCHEDULE
            .replace("min_instances = 2\n", "")
            .replace("spare_executors = 4\n", ""),
    );
    assert!(one_error(&text).message.contains("changes nothing"));
    // A missing key: at the [[pool.schedule]] header.
    let text = with_schedule(&SCHEDULE.replace("timezone = \"Europe/Berlin\"\n", ""));
    let e = one_error(&text);
    assert_eq!(
        e.key, "pool[0] (name \"linux\").schedule[0].timezone",
        "{e}"
    );
    assert_eq!(e.line, Some(line_of(&text, "[[pool.schedule]]")));
}
