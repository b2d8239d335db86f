//! `deploy/`: the systemd units pass `systemd-analyze verify`, their command lines and the example config files
//! parse with this build's flags, and the cloud-init user data is valid YAML carrying configs that parse too.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn exec_start(unit: &str) -> Vec<String> {
    let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    line.split_whitespace().map(String::from).collect()
}

/// `ticklake config show` for a unit's command line with its config file taken from `configs`; the output.
fn show_unit(unit: &str, instance: &str, configs: &Path) -> String {
    let mut args = exec_start(unit);
    assert_eq!(args[0], "/usr/local/bin/ticklake");
    for a in args.iter_mut() {
        *a = a.replace("%i", instance).replace("/etc/ticklake/", &format!("{}/", configs.display()));
    }
    // Insert `config show` before the subcommand (the last word before its own flags).
    let sub = args.iter().position(|a| a == "sink" || a == "replay" || a == "lake").expect("a command in the unit");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticklake"));
    cmd.args(&args[1..sub]).args(["config", "show"]).args(&args[sub..]).env_remove("TICKLAKE_TOPIC");
    let out = ok(run(&mut cmd));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn units_verify_and_their_command_lines_and_configs_parse() {
    let deploy = repo_path("deploy");
    let sink = std::fs::read_to_string(deploy.join("ticklake-sink@.service")).unwrap();
    let replay = std::fs::read_to_string(deploy.join("ticklake-replay@.service")).unwrap();
    let compact = std::fs::read_to_string(deploy.join("ticklake-compact@.service")).unwrap();
    let timer = std::fs::read_to_string(deploy.join("ticklake-compact@.timer")).unwrap();

    let shown = show_unit(&sink, "indices", &deploy);
    for want in [
        "topic = \"indices\"  # file",
        "to = \"s3://my-market-lake/indices\"  # file",
        "metrics_addr = \"127.0.0.1:9464\"  # file",
    ] {
        assert!(shown.contains(want), "missing {want}:\n{shown}");
    }
    let shown = show_unit(&replay, "indices", &deploy);
    for want in [
        "input = \"/var/lib/ticklake/indices.csv\"  # file",
        "sample = \"true\"  # file",
        "progress = \"never\"  # flag",
    ] {
        assert!(shown.contains(want), "missing {want}:\n{shown}");
    }

    let shown = show_unit(&compact, "indices", &deploy);
    for want in ["older_than = \"1h\"  # file", "to = \"s3://my-market-lake/indices\"  # file"] {
        assert!(shown.contains(want), "missing {want}:\n{shown}");
    }

    // systemd's own check, with ExecStart pointing at this build (verify wants an executable that exists).
    let dir = tempfile::tempdir().unwrap();
    let units = [
        ("ticklake-sink@.service", &sink),
        ("ticklake-replay@.service", &replay),
        ("ticklake-compact@.service", &compact),
        ("ticklake-compact@.timer", &timer),
    ];
    for (name, text) in units {
        let text = text.replace("/usr/local/bin/ticklake", env!("CARGO_BIN_EXE_ticklake"));
        std::fs::write(dir.path().join(name), text).unwrap();
        let instance = dir.path().join(name.replace("@.", "@indices."));
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&instance)
            .output()
            .expect("systemd-analyze (`proto-tests/scripts/servers.sh install` installs it)");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        // MemoryLimit= is kept on purpose for Amazon Linux 2's systemd 219 (see the unit's comment).
        let problems: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(name.split('@').next().unwrap()) && !l.contains("MemoryLimit="))
            .collect();
        assert!(out.status.success() && problems.is_empty(), "systemd-analyze verify {name}:\n{err}");
    }
}

#[test]
fn cloud_init_is_valid_yaml_with_configs_that_parse() {
    let env_py = std::env::var("TICKLAKE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
print(json.dumps({"files": {f["path"]: f["content"] for f in doc["write_files"]},
                  "runcmd": [" ".join(c) if isinstance(c, list) else c for c in doc["runcmd"]]}))
"#;
    let out = ok(run(Command::new(env_py).args(["-c", script]).arg(repo_path("deploy/cloud-init.yaml"))));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = v["files"].as_object().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let name = Path::new(path).file_name().unwrap();
        std::fs::write(dir.path().join(name), content.as_str().unwrap()).unwrap();
    }
    assert!(files.contains_key("/etc/ticklake/ticklake.env"));
    let runcmd: Vec<&str> = v["runcmd"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    for unit in ["ticklake-sink@indices", "ticklake-replay@indices"] {
        assert!(runcmd.iter().any(|c| c.contains("enable --now") && c.contains(unit)), "{runcmd:?}");
        let file = unit.replace("@indices", "@.service");
        assert!(runcmd.iter().any(|c| c.contains(&file)), "copies {file}: {runcmd:?}");
        assert!(repo_path("deploy").join(&file).exists());
        let text = std::fs::read_to_string(repo_path("deploy").join(&file)).unwrap();
        let shown = show_unit(&text, "indices", dir.path());
        assert!(shown.contains("topic = \"indices\"  # file"), "{shown}");
    }
}
