//! A newcomer's first minutes: advice in each command's own flags, plain logs in files, no folder left behind by a
//! failed start, and test servers that `just test` stops only when it started them.

use std::process::{Command, Stdio};

use crate::env_or_skip;
use crate::support::*;

#[test]
fn a_missing_topic_is_explained_in_the_commands_own_flags_and_leaves_no_folder() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let topic = random_name("nope");
    let out = run(&mut sink_cmd(&env, &topic, lake.to_str().unwrap(), &[]));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains(&format!("ticklake replay FILE --topic {topic} --partitions N")), "{e}");
    assert!(e.contains("selects partitions to read; it creates nothing"), "{e}");
    assert!(!e.contains("pass --partitions N to create"), "the sink's --partitions creates nothing: {e}");
    assert!(!lake.exists(), "a sink that never committed creates no folder");

    // replay's own advice names replay's flag.
    let out = run(env.ticklake().args(["replay", "data/indices.csv", "--topic", &topic]).current_dir(repo_path("")));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("Pass --partitions N to create it"), "{}", stderr(&out));

    // An unreachable broker: nothing created either.
    let out = run(sink_cmd(&env, &topic, lake.to_str().unwrap(), &[]).env("KAFKA_BROKERS", "127.0.0.1:1"));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(!lake.exists(), "nothing created before the broker answered");
}

#[test]
fn usage_errors_do_not_ask_for_what_the_environment_provides() {
    let env = env_or_skip!();
    // AWS_ENDPOINT_URL and AWS_REGION are set in this environment (`just proto`).
    assert!(std::env::var("AWS_ENDPOINT_URL").is_ok());
    let out = run(env.ticklake().args(["athena", "--to", "s3://b/p"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("--table <TABLE>"), "{e}");
    assert!(!e.contains("--s3-endpoint") && !e.contains("--region"), "{e}");
}

#[test]
fn logs_in_a_file_have_no_colour_codes_and_no_color_is_respected_on_a_terminal() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sink.log");
    let topic = random_name("plain");
    replay_csv(&env, &repo_path("data/indices.csv"), &topic, 1, &["--limit", "20"]);
    let status = sink_cmd(&env, &topic, dir.path().join("lake").to_str().unwrap(), &[])
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("sink starting"), "{text}");
    assert!(!text.contains('\u{1b}'), "escape codes in a file:\n{text}");

    // On a terminal (script(1) gives the command a pty): colour, unless NO_COLOR is set.
    let on_tty = |no_color: bool| {
        let bin = env!("CARGO_BIN_EXE_ticklake");
        let mut c = Command::new("script");
        let csv = repo_path("data/indices.csv");
        c.args([
            "-qec",
            &format!("{bin} replay {} --topic {topic} --limit 1 --progress never", csv.display()),
            "/dev/null",
        ])
        .env("KAFKA_BROKERS", &env.brokers)
        .env("RUST_LOG", "info,rskafka=error")
        .stdin(Stdio::null());
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        String::from_utf8_lossy(&ok(run(&mut c)).stdout).into_owned()
    };
    assert!(on_tty(false).contains('\u{1b}'), "a terminal gets colour");
    assert!(!on_tty(true).contains('\u{1b}'), "NO_COLOR turns it off");
}

#[test]
fn the_server_script_stops_only_what_it_started() {
    let _env = env_or_skip!();
    let python = std::env::var("TICKLAKE_PYTHON").unwrap();
    let venv = std::path::Path::new(&python).parent().unwrap().parent().unwrap().to_path_buf();
    let state = tempfile::tempdir().unwrap();
    let (kafka, s3) = {
        // Two ports at once (two listeners held together cannot get the same one).
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
    };
    let script = |args: &[&str]| {
        let out = run(Command::new(repo_path("proto-tests/scripts/servers.sh"))
            .args(args)
            .env("TICKLAKE_VENV", &venv)
            .env("TICKLAKE_SERVERS_STATE", state.path())
            .env("TICKLAKE_KAFKA_PORT", kafka.to_string())
            .env("TICKLAKE_S3_PORT", s3.to_string()));
        assert!(out.status.success(), "servers.sh {args:?}: {}", stderr(&out));
        stderr(&out)
    };
    let up = |port: u16| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    script(&["start", "demo"]); // what `just demo` does
    assert!(up(kafka) && up(s3));
    let log = script(&["start", "proto-1"]); // what `just test` does next
    assert!(log.contains("already answers"), "{log}");
    script(&["stop", "proto-1"]);
    assert!(up(kafka) && up(s3), "`just test` left the demo's servers running");
    script(&["stop", "demo"]);
    // kill -9 is immediate, the port's release follows: wait for it.
    wait_until("the demo's servers stopping", || (!up(kafka) && !up(s3)).then_some(()));
}
