//! Kafka faults from a proxy (written here) in front of the real broker, which advertises it:
//! - corrupt record batches: it flips one byte near the end of every Fetch response. The sink and the console
//!   consumer must stop with an error naming the partition and offset (rskafka checks each batch's CRC-32C), never
//!   panic, and the lake must not be checkpointed past the corrupt batch;
//! - lost produce answers: for a seeded share of Produce requests it forwards the request, waits for the broker's
//!   answer (so the broker stored the batch) and drops the connection instead of passing the answer on. Replay must
//!   resend, and with the idempotent producer the topic holds every CSV row exactly once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::env_or_skip;
use crate::support::*;

const API_PRODUCE: i16 = 0;
const API_FETCH: i16 = 1;

/// What the proxy does to the traffic.
#[derive(Default)]
struct Faults {
    /// Corrupt Fetch responses that carry records.
    corrupt: AtomicBool,
    /// Lose the answer to this share of Produce requests (seeded), at most `lose_left` times.
    lose: Mutex<Option<(rand::rngs::StdRng, f64)>>,
    lose_left: AtomicU64,
    /// Answers lost so far.
    lost: AtomicU64,
}

impl Faults {
    fn losing(seed: u64, share: f64, at_most: u64) -> Arc<Faults> {
        let f = Faults::default();
        *f.lose.lock().unwrap() = Some((rand::rngs::StdRng::seed_from_u64(seed), share));
        f.lose_left.store(at_most, Ordering::SeqCst);
        Arc::new(f)
    }

    /// Whether to lose the answer to this Produce request.
    fn lose_this(&self) -> bool {
        let mut lose = self.lose.lock().unwrap();
        let Some((rng, share)) = lose.as_mut() else { return false };
        let hit = rng.random_bool(*share);
        hit && self.lose_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
    r.read_exact(&mut body).await?;
    Ok(body)
}

async fn write_frame(w: &mut (impl AsyncWriteExt + Unpin), body: &[u8]) -> std::io::Result<()> {
    w.write_all(&(body.len() as i32).to_be_bytes()).await?;
    w.write_all(body).await
}

/// Forwards Kafka frames both ways, with `faults`.
fn faulty_proxy(listener: TcpListener, upstream: String, faults: Arc<Faults>) {
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let (upstream, faults) = (upstream.clone(), faults.clone());
            tokio::spawn(async move {
                let Ok(broker) = TcpStream::connect(&upstream).await else { return };
                let (mut cr, mut cw) = client.into_split();
                let (mut br, mut bw) = broker.into_split();
                // correlation id → API key, from the requests.
                let apis: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();
                // correlation ids whose answers are lost.
                let doomed: Arc<Mutex<HashSet<i32>>> = Arc::default();
                let (seen, doom, up_faults) = (apis.clone(), doomed.clone(), faults.clone());
                let up = tokio::spawn(async move {
                    while let Ok(req) = read_frame(&mut cr).await {
                        if req.len() >= 8 {
                            let api = i16::from_be_bytes([req[0], req[1]]);
                            let corr = i32::from_be_bytes([req[4], req[5], req[6], req[7]]);
                            seen.lock().unwrap().insert(corr, api);
                            if api == API_PRODUCE && up_faults.lose_this() {
                                doom.lock().unwrap().insert(corr);
                            }
                        }
                        if write_frame(&mut bw, &req).await.is_err() {
                            return;
                        }
                    }
                });
                while let Ok(mut resp) = read_frame(&mut br).await {
                    let corr = i32::from_be_bytes([resp[0], resp[1], resp[2], resp[3]]);
                    let api = apis.lock().unwrap().remove(&corr);
                    if doomed.lock().unwrap().remove(&corr) {
                        // The broker stored the batch and answered; the client never hears it.
                        faults.lost.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    // A Fetch response with records is far longer than an empty one.
                    if api == Some(API_FETCH) && resp.len() > 300 && faults.corrupt.load(Ordering::Relaxed) {
                        let i = resp.len() - 20;
                        resp[i] ^= 0x5A;
                    }
                    if write_frame(&mut cw, &resp).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_batch_stops_the_sink_naming_partition_and_offset() {
    let env = env_or_skip!();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap().to_string();
    let broker = Broker::memory(Some(&proxy));
    let faults = Arc::new(Faults::default());
    faulty_proxy(listener, broker.addr.clone(), faults.clone());
    let tl = || {
        let mut c = env.ticklake();
        c.env("KAFKA_BROKERS", &proxy);
        c
    };
    let topic = random_name("corrupt");
    let csv = repo_path("data/indices.csv");
    let mut replay = tl();
    replay.args(["replay", csv.to_str().unwrap(), "--topic", &topic, "--partitions", "1", "--compression", "none"]);
    ok(tokio::task::spawn_blocking(move || run(&mut replay)).await.unwrap());

    faults.corrupt.store(true, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("lake");
    // Without --schema the sink first samples records to choose one; with it, the partition worker fetches
    // (and retries for --retry-for). Both must fail the same clear way.
    for schema in [None, Some("indices")] {
        let mut sink = tl();
        sink.args(["sink", "--topic", &topic, "--to", to.to_str().unwrap(), "--exit-at-end", "--retry-for", "2s"]);
        if let Some(s) = schema {
            sink.args(["--schema", s]);
        }
        let out = tokio::task::spawn_blocking(move || run(&mut sink)).await.unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains(&format!("fetching {topic}/0 at offset 0 failed")), "names partition and offset:\n{err}");
        assert!(err.to_ascii_lowercase().contains("crc"), "says why:\n{err}");
    }
    // Nothing was checkpointed past the corrupt batch (here: nothing at all).
    let checkpoints = dir.path().join("lake/_ticklake/checkpoints");
    let stored: Vec<_> = walk(&checkpoints);
    for cp in stored {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
        assert_eq!(v["next_offset"], 0, "{}", cp.display());
    }

    // The console consumer too: an error, not a crash.
    let mut consume = tl();
    consume.args(["consume", "--topic", &topic, "--exit-at-end", "--count", "--kafka-timeout", "3s"]);
    let out = tokio::task::spawn_blocking(move || run(&mut consume)).await.unwrap();
    assert!(!out.status.success() && !stderr(&out).contains("panicked"), "{}", stderr(&out));

    // Once the broker answers sound batches again, a restart resumes and lands every row exactly once.
    faults.corrupt.store(false, Ordering::Relaxed);
    let mut sink = tl();
    sink.args(["sink", "--topic", &topic, "--to", to.to_str().unwrap(), "--exit-at-end"]);
    ok(tokio::task::spawn_blocking(move || run(&mut sink)).await.unwrap());
    assert_eq!(env.read_lake(LakeAt::Local(&to)).rows.len(), 4000);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

fn seed() -> u64 {
    let s = std::env::var("TICKLAKE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {s} (rerun with TICKLAKE_TEST_SEED={s})");
    s
}

/// The topic as librdkafka reads it (`check/read_topic.py`).
fn read_with_librdkafka(env: &TestEnv, brokers: &str, topic: &str) -> Vec<serde_json::Value> {
    let out = ok(run(env.python().arg(repo_path("proto-tests/check/read_topic.py")).args([
        "--brokers",
        brokers,
        "--topic",
        topic,
    ])));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Issue 22: replay through a proxy that loses the answers to a seeded share of produce requests after the broker
/// stored them. Without idempotence the resends are stored twice (the failure this guards against); with the
/// default, librdkafka reads every CSV row exactly once: its key, its murmur2 partition, its value, in CSV order per
/// key. The summary counts every resend.
#[tokio::test(flavor = "multi_thread")]
async fn lost_produce_answers_cost_resends_never_duplicates() {
    let env = env_or_skip!();
    let seed = seed();
    let csv = repo_path("data/indices.csv");
    let expected = csv_rows(&csv);
    for (idempotence, seed) in [("off", seed), ("auto", seed.wrapping_add(1))] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = listener.local_addr().unwrap().to_string();
        let broker = Broker::memory(Some(&proxy));
        let faults = Faults::losing(seed, 0.4, 10);
        faulty_proxy(listener, broker.addr.clone(), faults.clone());
        let topic = random_name("lost-answers");
        let mut replay = env.ticklake();
        replay
            .env("KAFKA_BROKERS", &proxy)
            .args(["replay", csv.to_str().unwrap(), "--topic", &topic, "--partitions", "3"])
            // About 20 produce requests (chunks of up to 256 rows): a share of 0.4 loses some answers in any run.
            .args(["--batch-bytes", "2KiB", "--kafka-timeout", "5s", "--log-format", "json"])
            .args(["--idempotence", idempotence]);
        let out = ok(tokio::task::spawn_blocking(move || run(&mut replay)).await.unwrap());
        let err = stderr(&out);
        let lost = faults.lost.load(Ordering::SeqCst);
        assert!(lost > 0, "the proxy lost no answer (seed {seed})");
        assert_eq!(summary_count(&err, "sent"), expected.len() as u64, "{err}");
        assert!(summary_count(&err, "retries") >= lost, "every resend counted: {lost} answers lost\n{err}");
        let records = read_with_librdkafka(&env, &broker.addr, &topic);
        eprintln!("--idempotence {idempotence}: {lost} answers lost, {} records in the topic", records.len());
        if idempotence == "off" {
            assert!(records.len() > expected.len(), "without idempotence the resent batches are stored twice");
            // The end-to-end check sees them: the lake holds every offset once, but some lines twice.
            let lake = tempfile::tempdir().unwrap();
            let to = lake.path().to_str().unwrap().to_string();
            let tl = |args: Vec<String>| {
                let mut c = env.ticklake();
                c.env("KAFKA_BROKERS", &broker.addr).args(args);
                c
            };
            let args = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
            let mut sink = tl(args(&["sink", "--topic", &topic, "--to", &to, "--exit-at-end"]));
            ok(tokio::task::spawn_blocking(move || run(&mut sink)).await.unwrap());
            let mut verify =
                tl(args(&["lake", "verify", "--topic", &topic, "--to", &to, "--source", csv.to_str().unwrap()]));
            let out = tokio::task::spawn_blocking(move || run(&mut verify)).await.unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert_ne!(out.status.code(), Some(0), "{text}");
            assert!(
                text.contains("exactly once: yes") && text.contains("from the file to the lake, exactly once: NO"),
                "{text}"
            );
            assert!(!text.contains(" 0 more than once"), "{text}");
            continue;
        }
        assert_eq!(records.len(), expected.len(), "every row once");
        // Each CSV row once, on its key's partition, with its values; per key in CSV order.
        let mut by_row: BTreeMap<(String, String), &serde_json::Value> = BTreeMap::new();
        for r in &records {
            let v: serde_json::Value = serde_json::from_str(r["value"].as_str().unwrap()).unwrap();
            let key = r["key"].as_str().unwrap().to_string();
            assert_eq!(v["symbol"].as_str(), Some(key.as_str()));
            let p = ticklake::kafka::partition_for_key(key.as_bytes(), 3);
            assert_eq!(r["partition"].as_i64(), Some(p as i64), "{key} on its murmur2 partition");
            let k = (key, v["trade_date"].as_str().unwrap().to_string());
            assert!(by_row.insert(k.clone(), r).is_none(), "{k:?} twice");
        }
        let mut last: HashMap<String, (i64, i64)> = HashMap::new();
        for row in &expected {
            let r = by_row[&(row["Index"].clone(), row["Date"].clone())];
            let v: serde_json::Value = serde_json::from_str(r["value"].as_str().unwrap()).unwrap();
            assert_eq!(v["close"].as_f64(), Some(row["Close"].parse::<f64>().unwrap()), "{v}");
            let at = (r["partition"].as_i64().unwrap(), r["offset"].as_i64().unwrap());
            if let Some(before) = last.insert(row["Index"].clone(), at) {
                assert!(before.1 < at.1, "{} out of CSV order: offset {} after {}", row["Index"], at.1, before.1);
            }
        }
    }
}

/// Issue 22: the SIGKILL-and-resume test of `replay` with the proxy losing produce answers on the way.
#[tokio::test(flavor = "multi_thread")]
async fn sigkilled_replays_resume_through_lost_answers_to_every_row_once() {
    let env = env_or_skip!();
    let seed = seed();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap().to_string();
    let broker = Broker::memory(Some(&proxy));
    let faults = Faults::losing(seed, 0.1, 30);
    faulty_proxy(listener, broker.addr.clone(), faults.clone());
    tokio::task::spawn_blocking(move || crate::replay::kill_and_resume(&env, &proxy, seed)).await.unwrap();
    let lost = faults.lost.load(Ordering::SeqCst);
    eprintln!("{lost} produce answers lost on the way");
    assert!(lost > 0, "the proxy lost no answer (seed {seed})");
}
