//! Every class the agent writes is described exactly as the real Jenkins 2.460 and its
//! plugins declare it: serialVersionUID, fields (names, order, types), `writeObject`, and the
//! serializable superclass. The JDK reads the real classes out of `../shared/jenkins/` (the
//! war's jars and the plugins' jars, in a class loader of their own) and says how it would
//! serialize each; a difference here is an answer the controller would refuse.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use nectr_agent::javaser::ClassSpec;

/// The jars of the real Jenkins, extracted once into the target dir.
fn real_jars() -> PathBuf {
    let dir = support::repo_root().join("target/real-jenkins-jars");
    let done = dir.join(".complete");
    if done.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let jenkins = support::jenkins::jenkins_dir();
    let war = jenkins.join("jenkins.war");
    assert!(
        war.exists(),
        "the real Jenkins is not at {} (set NECTR_JENKINS_DIR)",
        jenkins.display()
    );
    extract_libs(&war, &dir.join("war"));
    for e in std::fs::read_dir(jenkins.join("plugins"))
        .expect("plugins dir")
        .flatten()
    {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "jpi" || x == "hpi") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            extract_libs(&p, &dir.join("plugins").join(name));
        }
    }
    std::fs::write(&done, "").unwrap();
    dir
}

/// Copies the `WEB-INF/lib/*.jar` of an archive (war or plugin) into `to`.
fn extract_libs(archive: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let f = std::fs::File::open(archive).unwrap();
    let mut zip = zip::ZipArchive::new(f).unwrap();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let name = entry.name().to_string();
        if let Some(jar) = name.strip_prefix("WEB-INF/lib/") {
            if jar.ends_with(".jar") && !jar.contains('/') {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                std::fs::write(to.join(jar), bytes).unwrap();
            }
        }
    }
}

fn check(spec: &ClassSpec, real: &serde_json::Value) -> Vec<String> {
    let mut errors = Vec::new();
    let name = &spec.name;
    if let Some(e) = real["error"].as_str() {
        return vec![format!("{name}: {e}")];
    }
    let record = real["record"] == true;
    let enumeration = real["enum"] == true;
    // A record's or an enum's stream descriptor carries SUID 0, whatever the class says.
    let want_suid = if record || enumeration {
        0
    } else {
        real["suid"].as_i64().unwrap()
    };
    if spec.suid != want_suid {
        errors.push(format!(
            "{name}: SUID {} but Jenkins has {want_suid}",
            spec.suid
        ));
    }
    if !enumeration {
        let real_fields: Vec<(String, String)> = real["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f[0].as_str().unwrap().to_string(),
                    f[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let ours: Vec<(String, String)> = spec
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.signature.clone()))
            .collect();
        if ours != real_fields {
            errors.push(format!(
                "{name}: fields {ours:?} but Jenkins has {real_fields:?}"
            ));
        }
        let wm = spec.flags & 0x01 != 0;
        if wm != (real["writeObject"] == true) {
            errors.push(format!(
                "{name}: writeObject flag {wm} differs from Jenkins"
            ));
        }
        let sup = real["super"].as_str().map(str::to_string);
        if spec.super_class != sup && !record {
            errors.push(format!(
                "{name}: superclass {:?} but Jenkins has {sup:?}",
                spec.super_class
            ));
        }
    }
    errors
}

#[test]
fn every_class_the_agent_writes_matches_jenkins_2_460() {
    let jars = real_jars();
    let registry = nectr_agent::handlers::classes::registry();
    let mut names = nectr_agent::handlers::classes::declared();
    names.extend(nectr_agent::remoting::classes::declared());
    names.sort();
    names.dedup();
    let mut args: Vec<&str> = vec!["describe", jars.to_str().unwrap()];
    args.extend(names.iter().map(String::as_str));
    let out = support::run_peer(&args);
    let real: BTreeMap<String, serde_json::Value> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("describe json");
            (v["name"].as_str().unwrap().to_string(), v)
        })
        .collect();
    let mut errors = Vec::new();
    let mut checked = 0;
    for name in &names {
        let spec = registry.get(name).expect("declared");
        let Some(r) = real.get(name) else {
            errors.push(format!("{name}: not described"));
            continue;
        };
        errors.extend(check(&spec, r));
        checked += 1;
    }
    assert!(
        errors.is_empty(),
        "{} of {checked} classes differ:\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert!(checked > 40, "only {checked} classes checked");
}
