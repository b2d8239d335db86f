//! `ticklake doctor`: why can't I connect? Each check prints a check mark or a cross, and for a cross the fix.
//!
//! Kafka checks go in the order a client goes: resolve and connect to the bootstrap address, ask it for metadata,
//! then resolve and connect to every broker address the cluster *advertises* (clients talk to those, not to the
//! bootstrap address: a broker advertising its private EC2 name is the classic "Timed out waiting for a node
//! assignment"). The metadata request is sent by hand (`kafka::metadata`) so that doctor can show what is
//! advertised even when rskafka could never connect to it.

use std::time::{Duration, Instant};

use crate::kafka::metadata::{self, Metadata};
use crate::kafka::{Kafka, KafkaConfig};
use crate::lake::{LakeUrl, S3Options, Store};

/// Clock skew above which doctor fails: SigV4 allows 15 minutes, but logs and `--max-age` want far less.
const MAX_SKEW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct DoctorConfig {
    pub kafka: KafkaConfig,
    pub topic: Option<String>,
    pub write_test: bool,
    /// `--group`: the consumer group whose coordinator must answer.
    pub group: Option<String>,
    pub lake: Option<(LakeUrl, S3Options)>,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub what: String,
    /// For a failure: what to change.
    pub fix: Option<String>,
}

/// All checks, in order.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn pass(&mut self, what: impl Into<String>) {
        let what = what.into();
        println!("  \u{2713} {what}");
        self.checks.push(Check { ok: true, what, fix: None });
    }

    fn fail(&mut self, what: impl Into<String>, fix: impl Into<String>) {
        let (what, fix) = (what.into(), fix.into());
        println!("  \u{2717} {what}\n      fix: {fix}");
        self.checks.push(Check { ok: false, what, fix: Some(fix) });
    }

    pub fn failed(&self) -> usize {
        self.checks.iter().filter(|c| !c.ok).count()
    }

    /// The last line.
    pub fn summary(&self) -> String {
        format!("doctor: {} checks, {} failed", self.checks.len(), self.failed())
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Runs every check, printing each on stdout as it finishes; never fails itself (a failure is a cross).
pub async fn run(cfg: &DoctorConfig) -> Report {
    let mut r = Report::default();
    let timeout = cfg.kafka.timeout.min(Duration::from_secs(5));
    println!("Kafka ({})", cfg.kafka.brokers.join(","));
    let mut reachable = None;
    for b in &cfg.kafka.brokers {
        match crate::kafka::tcp_probe(b, timeout).await {
            Ok(t) => {
                r.pass(format!("bootstrap {b} resolves and accepts TCP ({})", ms(t)));
                reachable.get_or_insert_with(|| b.clone());
            }
            Err(e) if !e.resolved => r.fail(
                format!("bootstrap {b}: {}", e.reason),
                "check the host name in --brokers / KAFKA_BROKERS (a typo? a name only the broker's network knows?)",
            ),
            Err(e) => r.fail(
                format!("bootstrap {b} does not accept TCP: {}", e.reason),
                "start the broker, check its port and `listeners`, and on EC2 allow the port from this machine in \
                 the broker's security group",
            ),
        }
    }
    let Some(bootstrap) = reachable else {
        println!("  (no bootstrap address answers: the other Kafka checks need one)");
        return lake_checks(cfg, r).await;
    };
    if cfg.kafka.security.sasl.is_some() {
        sasl_checks(cfg, &mut r).await;
        group_check(cfg, &mut r).await;
        return lake_checks(cfg, r).await;
    }
    let topics: Option<Vec<&str>> = cfg.topic.as_deref().map(|t| vec![t]);
    let tls = cfg.kafka.security.tls.clone();
    let meta = match metadata::fetch(&bootstrap, topics.as_deref(), tls, cfg.kafka.timeout).await {
        Ok(m) => {
            let list: Vec<String> = m.brokers.iter().map(|b| format!("{}={}:{}", b.node_id, b.host, b.port)).collect();
            r.pass(format!("metadata from {bootstrap}: {} broker(s) advertised: {}", m.brokers.len(), list.join(", ")));
            m
        }
        Err(e) => {
            let fix = if cfg.kafka.security.tls.is_some() {
                "make sure this port is the broker's SSL listener; if its certificate comes from a private CA, pass it \
                 with --ca-file"
            } else {
                "make sure this port is the broker's PLAINTEXT listener (not TLS, not the admin or HTTP port); for a \
                 TLS or SASL listener pass --security-protocol"
            };
            r.fail(format!("metadata from {bootstrap}: {e}"), fix);
            return lake_checks(cfg, r).await;
        }
    };
    let advertised_ok = advertised_checks(&meta, &bootstrap, timeout, &mut r).await;
    if let Some(topic) = &cfg.topic {
        topic_check(&meta, topic, &mut r);
    }
    if cfg.write_test {
        if advertised_ok {
            write_test(&cfg.kafka, &mut r).await;
        } else {
            r.fail("produce/fetch round trip skipped", "fix the advertised addresses above first");
        }
    }
    group_check(cfg, &mut r).await;
    lake_checks(cfg, r).await
}

/// `--group`: FindCoordinator for the group, and a connection to the broker it names.
async fn group_check(cfg: &DoctorConfig, r: &mut Report) {
    let Some(group) = &cfg.group else { return };
    let started = std::time::Instant::now();
    match crate::kafka::group_offsets::coordinator(&cfg.kafka, group).await {
        Ok(_) => r.pass(format!("consumer group '{group}': its coordinator answers ({})", ms(started.elapsed()))),
        Err(e) => r.fail(
            format!("consumer group '{group}': {e}"),
            "the coordinator is the leader of a partition of __consumer_offsets: check that topic exists and is              healthy (offsets.topic.replication.factor on a small cluster) and that this principal may DESCRIBE and              READ the group (ACLs)",
        ),
    }
}

/// With SASL the broker answers nothing before authentication, so the hand-made metadata request cannot be
/// used: authenticate with rskafka instead, then check the topic and the round trip through it.
async fn sasl_checks(cfg: &DoctorConfig, r: &mut Report) {
    let (mechanism, user, _) = cfg.kafka.security.sasl.as_ref().expect("called with SASL");
    match Kafka::connect(cfg.kafka.clone()).await {
        Ok(kafka) => {
            r.pass(format!("authenticated with {mechanism} as '{user}', metadata answers"));
            println!("  - advertised addresses: not listed with SASL (rskafka connected to them, so they work)");
            if let Some(topic) = &cfg.topic {
                match kafka.topic(topic).await {
                    Ok(t) => r.pass(format!("topic '{topic}': {} partition(s)", t.partitions.len())),
                    Err(e) => r.fail(e.to_string(), format!("create it: ticklake topic create {topic} --partitions N")),
                }
            }
            if cfg.write_test {
                write_test(&cfg.kafka, r).await;
            }
        }
        Err(e) => {
            let fix = match &e {
                crate::kafka::Error::AuthRefused { .. } => {
                    "check --sasl-mechanism (SCRAM-SHA-512 on MSK), --sasl-username and the password \
                     (KAFKA_SASL_PASSWORD or --sasl-password-file); the user must exist on the broker"
                }
                crate::kafka::Error::Tls { .. } => "pass the broker's CA with --ca-file",
                _ => "check the security protocol: is this a SASL listener?",
            };
            r.fail(e.to_string(), fix);
        }
    }
}

/// Every advertised broker must resolve and accept TCP from here. Returns whether all did.
async fn advertised_checks(meta: &Metadata, bootstrap: &str, timeout: Duration, r: &mut Report) -> bool {
    let mut all = true;
    for b in &meta.brokers {
        let addr = format!("{}:{}", b.host, b.port);
        match crate::kafka::tcp_probe(&addr, timeout).await {
            Ok(t) => r.pass(format!("broker {} advertises {addr}, reachable from here ({})", b.node_id, ms(t))),
            Err(e) => {
                all = false;
                let fix = if e.resolved {
                    format!(
                        "the broker says clients should connect to {addr}, which this machine cannot reach. On the \
                         broker set advertised.listeners=PLAINTEXT://<address reachable from clients>:{port} (for \
                         Redpanda: --advertise-kafka-addr), or open port {port} to this machine (EC2 security \
                         group). The bootstrap address {bootstrap} works, so clients connect and then time out \
                         \"waiting for a node assignment\"",
                        port = b.port
                    )
                } else {
                    format!(
                        "the broker advertises the host name '{}', which this machine cannot resolve (an EC2 \
                         private DNS name seen from outside its VPC?). On the broker set \
                         advertised.listeners=PLAINTEXT://<IP or name clients can resolve>:{} (for Redpanda: \
                         --advertise-kafka-addr), or map the name in /etc/hosts here",
                        b.host, b.port
                    )
                };
                r.fail(format!("broker {} advertises {addr}: {}", b.node_id, e.reason), fix);
            }
        }
    }
    all
}

fn topic_check(meta: &Metadata, topic: &str, r: &mut Report) {
    match meta.topics.iter().find(|t| t.name == topic) {
        Some(t) if t.error_code == 0 && !t.partitions.is_empty() => {
            let leaderless: Vec<i32> = t
                .partitions
                .iter()
                .filter(|(_, leader)| !meta.brokers.iter().any(|b| b.node_id == *leader))
                .map(|(p, _)| *p)
                .collect();
            let leaders: Vec<String> = t.partitions.iter().map(|(p, l)| format!("{p}->{l}")).collect();
            if leaderless.is_empty() {
                r.pass(format!(
                    "topic '{topic}': {} partition(s), leaders (partition->broker) {}",
                    t.partitions.len(),
                    leaders.join(" ")
                ));
            } else {
                r.fail(
                    format!("topic '{topic}': partitions {leaderless:?} have no live leader"),
                    "check the broker logs; a broker holding those partitions is down",
                );
            }
        }
        Some(t) if t.error_code != 0 && t.error_code != 3 => r.fail(
            format!("topic '{topic}': the broker answers error code {}", t.error_code),
            "see https://kafka.apache.org/protocol#protocol_error_codes (29/30 mean this user may not see it)",
        ),
        _ => r.fail(
            format!("topic '{topic}' does not exist"),
            format!("create it: ticklake topic create {topic} --partitions N"),
        ),
    }
}

/// Creates a scratch topic, produces one record, fetches it back, deletes the topic.
async fn write_test(cfg: &KafkaConfig, r: &mut Report) {
    let topic = format!("ticklake-doctor-{:08x}", rand::random::<u32>());
    let started = Instant::now();
    let result: crate::kafka::Result<bool> = async {
        let kafka = Kafka::connect(cfg.clone()).await?;
        kafka.create_topic(&topic, 1, 1).await?;
        let outcome = async {
            let pc = kafka.partition(&topic, 0).await?;
            let payload = format!("doctor {}", chrono::Utc::now().to_rfc3339()).into_bytes();
            let rec = crate::kafka::Record {
                key: None,
                value: Some(payload.clone()),
                headers: Default::default(),
                timestamp: chrono::Utc::now(),
            };
            let offsets = kafka
                .deadline("produce", &topic, 0, pc.produce(vec![rec], crate::kafka::Compression::NoCompression))
                .await?;
            let (records, _) = kafka.fetch(&pc, offsets[0], 1_000_000, 100).await?;
            Ok(records.iter().any(|r| r.record.value.as_deref() == Some(&payload[..])))
        }
        .await;
        let _ = kafka.delete_topic(&topic).await;
        outcome
    }
    .await;
    match result {
        Ok(true) => r.pass(format!("produce/fetch round trip on scratch topic {topic} ({})", ms(started.elapsed()))),
        Ok(false) => r.fail(
            format!("produce/fetch round trip on {topic}: the record did not come back"),
            "check the broker's logs",
        ),
        Err(e) => r.fail(
            format!("produce/fetch round trip on {topic}: {e}"),
            "this user needs create/write/read/delete on topics (ACLs), or skip --write-test",
        ),
    }
}

async fn lake_checks(cfg: &DoctorConfig, mut r: Report) -> Report {
    let Some((url, s3)) = &cfg.lake else { return r };
    println!("Lake ({})", url.display());
    let store = match Store::open(url, s3).await {
        Ok(s) => {
            r.pass(match url {
                LakeUrl::S3 { .. } => "bucket reachable and credentials accepted (list under the prefix)".to_string(),
                LakeUrl::Local(p) if p.is_dir() => format!("folder {} exists", p.display()),
                LakeUrl::Local(p) => format!("folder {} will be created at the sink's first commit", p.display()),
            });
            s
        }
        Err(e) => {
            let fix = match &e {
                // A local test server (an endpoint set): the repository's recipe; AWS: the console or the AWS CLI.
                crate::lake::StoreError::BucketMissing { .. } if s3.endpoint.is_some() => {
                    "create the bucket (`just bucket NAME` for the local test server; `aws s3 mb s3://NAME \
                     --endpoint-url ...` or your server's console otherwise), or correct --to"
                }
                crate::lake::StoreError::BucketMissing { .. } => {
                    "create the bucket (AWS console, or `aws s3 mb s3://NAME --region REGION`), or correct --to and \
                     --region; the sink never creates buckets itself"
                }
                crate::lake::StoreError::Request { .. } => {
                    "check --s3-endpoint / AWS_ENDPOINT_URL and the network path to S3 (a VPC endpoint or NAT?)"
                }
                _ => {
                    "the sink needs s3:ListBucket on the bucket and s3:GetObject/PutObject/DeleteObject under the \
                     prefix (see deploy/iam-policy.json), from env, AWS_PROFILE or the instance role"
                }
            };
            r.fail(e.to_string(), fix);
            return r;
        }
    };
    let key = format!("_ticklake/doctor/probe-{:08x}", rand::random::<u32>());
    let body = b"ticklake doctor probe".to_vec();
    let fix = "the sink needs s3:PutObject, s3:GetObject and s3:DeleteObject under the prefix (deploy/iam-policy.json)";
    if let Err(e) = store.put(&key, body.clone()).await {
        r.fail(format!("write {key}: {e}"), fix);
        return r;
    }
    match store.get(&key).await {
        Ok(Some(b)) if b == body => r.pass(format!("write and read back {key}")),
        Ok(_) => r.fail(format!("read {key}: not what was written"), "check for a proxy or object lock in the way"),
        Err(e) => r.fail(format!("read {key}: {e}"), fix),
    }
    match store.server_time(&key).await {
        Ok(Some(server)) => {
            let skew = (chrono::Utc::now() - server).num_milliseconds().unsigned_abs();
            let skew = Duration::from_millis(skew);
            if skew <= MAX_SKEW {
                r.pass(format!("clock within {} s of the S3 server's", skew.as_secs().max(1)));
            } else {
                r.fail(
                    format!("clock is {} s off the S3 server's Date header", skew.as_secs()),
                    "sync the clock (chronyd; on Amazon Linux 2: `systemctl enable --now chronyd`); SigV4 refuses \
                     requests over 15 minutes off, and event-time freshness metrics are skewed",
                );
            }
        }
        Ok(None) => {}
        Err(e) => r.fail(format!("read the S3 server's Date header: {e}"), fix),
    }
    match store.delete(&key).await {
        Ok(()) => r.pass(format!("delete {key}")),
        Err(e) => r.fail(format!("delete {key}: {e}"), fix),
    }
    r
}
