//! Shared helpers: the test environment, random names, the binary, reading topics back independently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rskafka::client::ClientBuilder;
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};

/// Where the servers are, from the environment `just proto` sets.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub brokers: String,
    /// Stops the whole run, with the evidence, if the test hangs.
    _watch: std::sync::Arc<crate::watchdog::Watch>,
}

impl TestEnv {
    /// `None` (after saying why) when the servers are not configured; a panic instead under CI.
    pub fn from_env() -> Option<TestEnv> {
        match std::env::var("KAFKA_BROKERS") {
            Ok(brokers) if std::env::var("TICKLAKE_PROTO").is_ok() => {
                Some(TestEnv { brokers, _watch: crate::watchdog::start() })
            }
            _ if std::env::var("CI").is_ok() => {
                panic!(
                    "CI is set but the test servers are not: run through `just proto` (it sets TICKLAKE_PROTO and KAFKA_BROKERS)"
                )
            }
            _ => {
                eprintln!(
                    "skipping: test servers not configured; run `just proto` (sets TICKLAKE_PROTO, KAFKA_BROKERS)"
                );
                None
            }
        }
    }

    /// The `ticklake` binary with this environment's broker.
    pub fn ticklake(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ticklake"));
        c.env("KAFKA_BROKERS", &self.brokers).env("RUST_LOG", "info,rskafka=error").env_remove("TICKLAKE_TOPIC");
        c
    }
}

/// Skips the test (returns) when the servers are not configured.
#[macro_export]
macro_rules! env_or_skip {
    () => {
        match $crate::support::TestEnv::from_env() {
            Some(env) => env,
            None => return,
        }
    };
}

/// A name no other test run uses.
pub fn random_name(prefix: &str) -> String {
    let n: u64 = rand::random();
    format!("{prefix}-{n:016x}")
}

/// The repository root (for `data/`).
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs a command to completion, printing its stderr if it is needed for a failure message.
pub fn run(cmd: &mut Command) -> Output {
    crate::watchdog::running(Some(cmd));
    let out = cmd.output().expect("cannot run ticklake");
    crate::watchdog::running(None);
    out
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command to completion with `input` on its stdin.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run the command");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Asserts the command exited 0, showing its stderr otherwise.
pub fn ok(o: Output) -> Output {
    assert!(o.status.success(), "ticklake failed ({:?}):\n{}", o.status, stderr(&o));
    o
}

/// One record read back from the broker.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: serde_json::Value,
    pub timestamp_ms: i64,
}

/// Reads every record of every partition of `topic` with rskafka directly (not through ticklake), up to the
/// high watermark each fetch reports.
pub async fn read_topic(brokers: &str, topic: &str) -> Vec<ReadRecord> {
    let client = ClientBuilder::new(vec![brokers.to_string()]).build().await.expect("connect");
    let topics = client.list_topics().await.expect("list topics");
    let t = topics.into_iter().find(|t| t.name == topic).unwrap_or_else(|| panic!("topic {topic} missing"));
    let mut out = Vec::new();
    for p in t.partitions {
        let pc = client.partition_client(topic, p, UnknownTopicHandling::Retry).await.expect("partition client");
        let mut next = pc.get_offset(OffsetAt::Earliest).await.expect("earliest");
        loop {
            let (records, hw) = tokio::time::timeout(Duration::from_secs(10), pc.fetch_records(next, 1..8_000_000, 50))
                .await
                .expect("fetch timed out")
                .expect("fetch");
            for r in records {
                if r.offset < next {
                    continue;
                }
                next = r.offset + 1;
                let value = serde_json::from_slice(r.record.value.as_deref().unwrap_or(b"null")).unwrap_or_else(|_| {
                    serde_json::Value::String(
                        String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default()).into(),
                    )
                });
                out.push(ReadRecord {
                    partition: p,
                    offset: r.offset,
                    key: r.record.key.map(|k| String::from_utf8_lossy(&k).into_owned()),
                    value,
                    timestamp_ms: r.record.timestamp.timestamp_millis(),
                });
            }
            if next >= hw {
                break;
            }
        }
    }
    out
}

/// Records per partition, in offset order.
pub fn by_partition(records: &[ReadRecord]) -> BTreeMap<i32, Vec<ReadRecord>> {
    let mut m: BTreeMap<i32, Vec<ReadRecord>> = BTreeMap::new();
    for r in records {
        m.entry(r.partition).or_default().push(r.clone());
    }
    for v in m.values_mut() {
        v.sort_by_key(|r| r.offset);
    }
    m
}

/// The rows of a CSV file as header-name → text maps, in file order.
pub fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut rdr = csv::Reader::from_path(path).expect("read csv");
    let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    rdr.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(String::from)).collect()).collect()
}

/// Waits for a state no process announces on its own (files in a folder, a metric, a closed port): `probe` is
/// asked every 50 ms until it answers `Some`. The 120 s bound only turns a hang into a failure naming `what`;
/// nothing is asserted about how soon the state comes. Prefer `Logged::wait_for` when a log line says it.
pub fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "never saw {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ticklake lake verify`'s report, which must pass.
pub fn verify_lake(env: &TestEnv, topic: &str, to: &str) -> String {
    let out = run(env.ticklake().args(["lake", "verify", "--topic", topic, "--to", to]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    text
}

/// A count from a command's machine-readable summary (run it with `--log-format json`): `summary_count(err,
/// "sent")`. Never parses the human line.
pub fn summary_count(stderr: &str, what: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["summary"].is_string())
        .and_then(|v| v["fields"][what].as_u64())
        .unwrap_or_else(|| panic!("no JSON summary with '{what}' (was --log-format json passed?) in:\n{stderr}"))
}

const END_OF_STDERR: &str = "\u{0}end of stderr";

/// A running command whose stderr is read as it comes, so a test can wait for a log line (an event) instead of
/// sleeping. Killed on drop.
pub struct Logged {
    pub child: KillOnDrop,
    lines: std::sync::Arc<(std::sync::Mutex<Vec<String>>, std::sync::Condvar)>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Logged {
    pub fn spawn(cmd: &mut Command) -> Logged {
        let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().expect("spawn ticklake");
        let err = child.stderr.take().unwrap();
        let lines = std::sync::Arc::new((std::sync::Mutex::new(Vec::new()), std::sync::Condvar::new()));
        crate::watchdog::watch_process(cmd, &lines);
        let l = lines.clone();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                l.0.lock().unwrap().push(line);
                l.1.notify_all();
            }
            // End of stderr (the process exited): a last line no command prints, so waiters can tell.
            l.0.lock().unwrap().push(END_OF_STDERR.into());
            l.1.notify_all();
        });
        Logged { child: KillOnDrop(child), lines, reader: Some(reader) }
    }

    /// Waits for a stderr line matching `pred` and returns it. The 120 s bound only turns a hang into a failure
    /// message; nothing is asserted about how fast the line comes.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut seen = self.lines.0.lock().unwrap();
        loop {
            if let Some(l) = seen.iter().find(|l| pred(l)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "never saw {what}; stderr so far:\n{}", seen.join("\n"));
            seen = self.lines.1.wait_timeout(seen, left.min(Duration::from_millis(500))).unwrap().0;
        }
    }

    /// Waits until `n` stderr lines match `pred` (true) or the process ends first (false).
    pub fn wait_count(&self, pred: impl Fn(&str) -> bool, n: usize) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut seen = self.lines.0.lock().unwrap();
        loop {
            if seen.iter().filter(|l| pred(l)).count() >= n {
                return true;
            }
            if seen.last().is_some_and(|l| l == END_OF_STDERR) {
                return false;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "neither {n} matching lines nor an exit; stderr so far:\n{}", seen.join("\n"));
            seen = self.lines.1.wait_timeout(seen, left.min(Duration::from_millis(500))).unwrap().0;
        }
    }

    /// Every stderr line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().iter().filter(|l| *l != END_OF_STDERR).cloned().collect()
    }

    /// How many stderr lines so far match `pred`.
    pub fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.lines.0.lock().unwrap().iter().filter(|l| pred(l)).count()
    }

    /// The address a `--metrics-addr 127.0.0.1:0` bound, from its log line.
    pub fn metrics_addr(&self) -> String {
        let line = self.wait_for("the metrics address", |l| l.contains("metrics on http://"));
        let rest = &line[line.find("http://").unwrap() + 7..];
        rest[..rest.find('/').unwrap()].to_string()
    }

    /// Whether it has exited (without waiting).
    pub fn exited(&self) -> bool {
        // Its stderr ended: the reader thread marks that with a last line.
        self.lines.0.lock().unwrap().last().is_some_and(|l| l == END_OF_STDERR)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.0.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig}");
    }

    /// Waits for the exit; the status and all of stderr.
    pub fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.0.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let lines = self.lines.0.lock().unwrap();
        let text = lines.iter().filter(|l| *l != END_OF_STDERR).cloned().collect::<Vec<_>>().join("\n");
        (status, text)
    }
}

/// A JSON object.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// The lake read back by `proto-tests/check/read_lake.py` (boto3/pyarrow, not ticklake).
#[derive(Debug, Default)]
pub struct LakeDump {
    /// (file, hive keys, row) per row.
    pub rows: Vec<(String, JsonMap, JsonMap)>,
    pub objects: Vec<String>,
    /// file → column → [physical, logical, compression].
    pub types: serde_json::Map<String, serde_json::Value>,
}

/// Where a test lake lives.
pub enum LakeAt<'a> {
    S3 { bucket: &'a str, prefix: &'a str },
    Local(&'a Path),
}

impl TestEnv {
    pub fn python(&self) -> Command {
        let py = std::env::var("TICKLAKE_PYTHON").expect("TICKLAKE_PYTHON (set by `just proto`)");
        Command::new(py)
    }

    pub fn s3_endpoint(&self) -> String {
        std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL (set by `just proto`)")
    }

    /// The Glue API (moto): `AWS_ENDPOINT_URL_GLUE` when the S3 server (MinIO) serves no Glue.
    pub fn glue_endpoint(&self) -> String {
        std::env::var("AWS_ENDPOINT_URL_GLUE").unwrap_or_else(|_| self.s3_endpoint())
    }

    /// Creates a fresh bucket on the test S3 server.
    pub fn create_bucket(&self) -> String {
        let bucket = random_name("lake");
        let script = format!(
            "import boto3; boto3.client('s3', endpoint_url='{}').create_bucket(Bucket='{bucket}')",
            self.s3_endpoint()
        );
        ok(run(self.python().args(["-c", &script])));
        bucket
    }

    pub fn read_lake(&self, at: LakeAt<'_>) -> LakeDump {
        let script = repo_path("proto-tests/check/read_lake.py");
        let mut cmd = self.python();
        cmd.arg(script);
        match at {
            LakeAt::S3 { bucket, prefix } => {
                cmd.args(["--endpoint", &self.s3_endpoint(), "--bucket", bucket, "--prefix", prefix]);
            }
            LakeAt::Local(dir) => {
                cmd.args(["--local", dir.to_str().unwrap()]);
            }
        }
        let out = ok(run(&mut cmd));
        let mut dump = LakeDump::default();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(objects) = v.get("objects") {
                dump.objects = objects.as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_string()).collect();
                dump.types = v["types"].as_object().unwrap().clone();
            } else {
                dump.rows.push((
                    v["file"].as_str().unwrap().to_string(),
                    v["hive"].as_object().unwrap().clone(),
                    v["row"].as_object().unwrap().clone(),
                ));
            }
        }
        dump
    }
}

/// Creates `topic` with `partitions` and produces `values` (unkeyed) to partition 0, with rskafka directly.
pub async fn produce_raw(brokers: &str, topic: &str, partitions: i32, values: &[Vec<u8>]) {
    let client = ClientBuilder::new(vec![brokers.to_string()]).build().await.expect("connect");
    client.controller_client().unwrap().create_topic(topic, partitions, 1, 5_000).await.expect("create topic");
    produce_at(brokers, topic, values, chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap()).await;
}

/// Produces more `values` to partition 0 of an existing topic.
pub async fn produce_more(brokers: &str, topic: &str, values: &[Vec<u8>]) {
    produce_at(brokers, topic, values, chrono::Utc::now()).await;
}

async fn produce_at(brokers: &str, topic: &str, values: &[Vec<u8>], timestamp: chrono::DateTime<chrono::Utc>) {
    use rskafka::client::partition::Compression;
    use rskafka::record::Record;
    let client = ClientBuilder::new(vec![brokers.to_string()]).build().await.expect("connect");
    let pc = client.partition_client(topic, 0, UnknownTopicHandling::Retry).await.expect("partition client");
    let records = values
        .iter()
        .map(|v| Record { key: None, value: Some(v.clone()), headers: Default::default(), timestamp })
        .collect();
    pc.produce(records, Compression::NoCompression).await.expect("produce");
}

/// (column, CSV header) of the indices preset's double columns, from the one schema definition.
pub fn index_price_columns() -> Vec<(String, String)> {
    ticklake::schema::Schema::indices()
        .fields
        .iter()
        .filter(|f| f.ty == ticklake::schema::ColumnType::Double)
        .map(|f| (f.name.clone(), f.source_name().to_string()))
        .collect()
}

/// `ticklake replay CSV --topic TOPIC --partitions N EXTRA...`, which must succeed.
pub fn replay_csv(env: &TestEnv, csv: &Path, topic: &str, partitions: u32, extra: &[&str]) -> Output {
    let partitions = partitions.to_string();
    let mut args = vec!["replay", csv.to_str().unwrap(), "--topic", topic, "--partitions", &partitions];
    args.extend_from_slice(extra);
    ok(run(env.ticklake().args(&args)))
}

/// `ticklake sink --topic TOPIC --to TO --exit-at-end EXTRA...`, to run, spawn or add environment to.
pub fn sink_cmd(env: &TestEnv, topic: &str, to: &str, extra: &[&str]) -> Command {
    let mut c = env.ticklake();
    c.args(["sink", "--topic", topic, "--to", to, "--exit-at-end"]).args(extra);
    c
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A broker of the test's own, killed on drop: Apache Kafka (the jars `servers.sh install-reference` fetched), one
/// KRaft node with its log in the broker's own folder, so what it acknowledged survives a SIGKILL and a restart.
/// Its client listener advertises `advertised` (`{port}` is replaced by its port), or its own address; the broker
/// itself talks to its controller and to itself on listeners of their own.
pub struct Broker {
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
    pub addr: String,
    advertised: String,
    /// Extra `server.properties` lines (more listeners, TLS).
    extra: Vec<String>,
    /// Extra classpath entries (a test's own broker plugin).
    classpath: Option<String>,
    formatted: bool,
}

impl Broker {
    /// A broker advertising `advertised` (see the type).
    pub fn memory(advertised: Option<&str>) -> Broker {
        Broker::with(advertised, &[])
    }

    /// A broker whose log survives a kill (every broker here does: Kafka keeps it on disk).
    pub fn persistent() -> Broker {
        Broker::with(None, &[])
    }

    /// With extra `server.properties` lines; `{dir}` in them is the broker's folder.
    pub fn with(advertised: Option<&str>, extra: &[&str]) -> Broker {
        Broker::with_classpath(advertised, extra, None)
    }

    /// With extra `server.properties` lines and classes of a test's own on the broker's classpath.
    pub fn with_classpath(advertised: Option<&str>, extra: &[&str], classpath: Option<&str>) -> Broker {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let advertised = advertised.map(|a| a.replace("{port}", &port.to_string())).unwrap_or(addr.clone());
        let dir = tempfile::tempdir().unwrap();
        let extra = extra.iter().map(|l| l.replace("{dir}", &dir.path().display().to_string())).collect();
        let classpath = classpath.map(String::from);
        let mut b = Broker { child: None, dir, addr, advertised, extra, classpath, formatted: false };
        b.start();
        b
    }

    fn java(&self) -> Command {
        let libs = std::env::var("TICKLAKE_KAFKA_LIBS").expect("TICKLAKE_KAFKA_LIBS (set by `just proto`)");
        let mut c = Command::new("java");
        let cp = match &self.classpath {
            Some(more) => format!("{libs}/*:{more}"),
            None => format!("{libs}/*"),
        };
        c.args(["-Xms128m", "-Xmx384m", "-XX:+UseSerialGC", "-cp", &cp]);
        c.current_dir(self.dir.path());
        c
    }

    /// Starts it (again, on the same ports and log).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let props = self.dir.path().join("server.properties");
        if !self.formatted {
            let (controller, internal) = (free_port(), free_port());
            let mut lines = vec![
                "process.roles=broker,controller".to_string(),
                "node.id=1".into(),
                format!("controller.quorum.voters=1@127.0.0.1:{controller}"),
                format!(
                    "listeners=CLIENT://{},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}",
                    self.addr
                ),
                format!("advertised.listeners=CLIENT://{},INTERNAL://127.0.0.1:{internal}", self.advertised),
                "controller.listener.names=CONTROLLER".into(),
                "inter.broker.listener.name=INTERNAL".into(),
                format!("log.dirs={}", self.dir.path().join("data").display()),
                "auto.create.topics.enable=false".into(),
                // Historical test data (see servers.sh); a test that wants retention sets its own.
                "log.retention.ms=-1".into(),
                "offsets.topic.replication.factor=1".into(),
                "transaction.state.log.replication.factor=1".into(),
                "transaction.state.log.min.isr=1".into(),
                "share.coordinator.state.topic.replication.factor=1".into(),
                "group.initial.rebalance.delay.ms=0".into(),
            ];
            if !self.extra.iter().any(|l| l.starts_with("listener.security.protocol.map=")) {
                lines.push(
                    "listener.security.protocol.map=CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
                );
            }
            // An extra line overrides a default of the same key.
            let keys: Vec<&str> = self.extra.iter().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
            lines.retain(|l| l.split_once('=').is_none_or(|(k, _)| !keys.contains(&k) || k.ends_with('+')));
            lines.extend(self.extra.iter().cloned());
            // An extra `listeners+=...` line adds to the listeners (TLS ones).
            let mut merged: Vec<String> = Vec::new();
            for l in lines {
                if let Some(more) = l.strip_prefix("listeners+=") {
                    merged.iter_mut().find(|m| m.starts_with("listeners=")).unwrap().push_str(&format!(",{more}"));
                } else if let Some(more) = l.strip_prefix("advertised.listeners+=") {
                    let a = merged.iter_mut().find(|m| m.starts_with("advertised.listeners=")).unwrap();
                    a.push_str(&format!(",{more}"));
                } else {
                    merged.push(l);
                }
            }
            std::fs::write(&props, merged.join("\n") + "\n").unwrap();
            let uuid = self.java().args(["kafka.tools.StorageTool", "random-uuid"]).output().unwrap();
            let uuid = String::from_utf8_lossy(&uuid.stdout).trim().to_string();
            let out = self
                .java()
                .args(["kafka.tools.StorageTool", "format", "-t", &uuid, "-c"])
                .arg(&props)
                .output()
                .unwrap();
            assert!(out.status.success(), "kafka-storage format: {}", String::from_utf8_lossy(&out.stderr));
            self.formatted = true;
        }
        let log = std::fs::File::create(self.dir.path().join("kafka.log")).unwrap();
        let config = repo_path("proto-tests/kafka/log4j2.yaml");
        let child = self
            .java()
            .arg(format!("-Dlog4j2.configurationFile={}", config.display()))
            .args(["kafka.Kafka"])
            .arg(&props)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start kafka");
        self.child = Some(child);
        // The event: the broker says so in its log (the one KafkaRaftServer line the test log config keeps).
        let log = self.dir.path().join("kafka.log");
        wait_until(&format!("kafka on {} starting (its log: {})", self.addr, log.display()), || {
            std::fs::read_to_string(&log).ok().filter(|l| l.contains("Kafka Server started")).map(|_| ())
        });
    }

    /// SIGKILL: no clean shutdown, like a crashed host.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A child process killed (SIGKILL) if the test ends without waiting for it, e.g. on a failed assertion.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `GET path` on a local HTTP server (the metrics endpoint); (status line, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(String, String)> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr)?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    c.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((head.lines().next().unwrap_or_default().to_string(), body.to_string()))
}

/// The value of a Prometheus sample, unlabelled or labelled, e.g. `ticklake_sink_lag_records{kafka_partition="0"}`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A row of Kafka's own `kafka-consumer-groups.sh --describe` (its ConsumerGroupCommand class).
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub partition: i32,
    /// The group's committed offset (`None`: "-", none yet).
    pub current: Option<i64>,
    pub end: i64,
    pub lag: Option<i64>,
    /// The member holding the partition ("-" when none).
    pub consumer: String,
}

/// `kafka-consumer-groups.sh --describe --group GROUP`, one row per partition; empty when the group is unknown.
pub fn describe_group_rows(env: &TestEnv, group: &str) -> Vec<GroupRow> {
    let libs = std::env::var("TICKLAKE_KAFKA_LIBS").expect("TICKLAKE_KAFKA_LIBS (set by `just proto`)");
    let out = run(Command::new("java")
        .args(["-cp", &format!("{libs}/*"), "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"])
        .args(["--bootstrap-server", &env.brokers, "--describe", "--group", group]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    let mut rows: Vec<GroupRow> = text
        .lines()
        .filter(|l| l.starts_with(group) && l.split_whitespace().next() == Some(group))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            GroupRow {
                partition: f[2].parse().unwrap(),
                current: f[3].parse().ok(),
                end: f[4].parse().unwrap_or(0),
                lag: f[5].parse().ok(),
                consumer: f[6].to_string(),
            }
        })
        .collect();
    rows.sort_by_key(|r| r.partition);
    rows
}
