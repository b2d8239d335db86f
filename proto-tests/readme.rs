//! The README's examples, run as written, in order, against a fresh broker and the local S3 server.
//!
//! Every ```sh block runs unless the line before it is `<!-- readme-test: skip (why) -->`. Each command line (with
//! `\` continuations joined) runs in bash with `ticklake` on PATH, in a scratch folder holding the repository's
//! `data/`, and must exit 0. A line whose comment says "runs until stopped" is started, stopped with SIGTERM once it
//! logs that it caught up with the topic, and must then exit 143 (its documented code for SIGTERM).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::env_or_skip;
use crate::support::*;

/// The README's runnable command lines, block by block: (README line, command).
fn examples(readme: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let (mut in_block, mut skip, mut prev) = (false, false, "");
    let mut pending = String::new();
    for (i, line) in readme.lines().enumerate() {
        if !in_block && line.starts_with("```sh") {
            in_block = true;
            skip = prev.starts_with("<!-- readme-test: skip");
        } else if in_block && line.starts_with("```") {
            in_block = false;
        } else if in_block && !skip {
            let t = line.trim();
            if let Some(head) = t.strip_suffix('\\') {
                pending.push_str(head);
                continue;
            }
            pending.push_str(t);
            let cmd = std::mem::take(&mut pending);
            if !cmd.is_empty() && !cmd.starts_with('#') {
                out.push((i + 1, cmd));
            }
        }
        if !line.trim().is_empty() {
            prev = line;
        }
    }
    out
}

#[test]
fn the_readme_parser_finds_the_examples_and_honours_skips() {
    let text = "x\n```sh\nticklake a \\\n  --b\n# c\n```\n<!-- readme-test: skip (no) -->\n```sh\nticklake d\n```\n";
    assert_eq!(examples(text), [(4, "ticklake a --b".to_string())]);
}

#[test]
fn every_readme_example_runs_as_written() {
    let env = env_or_skip!();
    let broker = Broker::memory(None);
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let commands = examples(&readme);
    assert!(commands.len() >= 15, "the README's examples were not found: {commands:?}");
    // The bucket the examples name, empty.
    let script = format!(
        "import boto3\ns3 = boto3.resource('s3', endpoint_url='{}')\nb = s3.Bucket('my-bucket')\nif b.creation_date is None: b.create()\nb.objects.all().delete()",
        env.s3_endpoint()
    );
    ok(run(env.python().args(["-c", &script])));
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo_path("data"), dir.path().join("data")).unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_ticklake")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    for (line, cmd) in commands {
        eprintln!("README.md:{line}: {cmd}");
        let mut c = Command::new("bash");
        c.args(["-o", "pipefail", "-c", &cmd])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("KAFKA_BROKERS", &broker.addr)
            .env("RUST_LOG", "info,rskafka=error")
            .env_remove("TICKLAKE_TOPIC")
            .env_remove("TICKLAKE_TO");
        if cmd.contains("runs until stopped") {
            c.stderr(Stdio::piped()).stdout(Stdio::null());
            let mut child = KillOnDrop(c.spawn().unwrap());
            let stderr = BufReader::new(child.0.stderr.take().unwrap());
            let (mut seen, mut stopped) = (Vec::new(), false);
            // Read to the end (a closed pipe would fail the command's own last words).
            for l in stderr.lines() {
                let l = l.unwrap();
                if l.contains("caught up with the end of the partition") && !stopped {
                    stopped = true;
                    // bash -c runs a single command in place (exec), so the signal reaches ticklake itself.
                    let pid = child.0.id().to_string();
                    ok(run(Command::new("kill").args(["-TERM", &pid])));
                }
                seen.push(l);
            }
            let status = child.0.wait().unwrap();
            assert_eq!(status.code(), Some(143), "README.md:{line}: {cmd}\n{}", seen.join("\n"));
        } else {
            let out = run(&mut c);
            assert!(
                out.status.success(),
                "README.md:{line}: `{cmd}` failed ({:?}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                stderr(&out)
            );
        }
    }
}
