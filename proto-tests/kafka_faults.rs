//! A broker that returns corrupt record batches: a proxy (written here) in front of the real broker, which
//! advertises it, flips one byte near the end of every Fetch response. The sink and the console consumer must stop
//! with an error naming the partition and offset (rskafka checks each batch's CRC-32C), never panic, and the lake
//! must not be checkpointed past the corrupt batch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::env_or_skip;
use crate::support::*;

const API_FETCH: i16 = 1;

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

/// Forwards Kafka frames both ways; corrupts Fetch responses that carry records when `corrupt` is set.
fn corrupting_proxy(listener: TcpListener, upstream: String, corrupt: Arc<std::sync::atomic::AtomicBool>) {
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let (upstream, corrupt) = (upstream.clone(), corrupt.clone());
            tokio::spawn(async move {
                let Ok(broker) = TcpStream::connect(&upstream).await else { return };
                let (mut cr, mut cw) = client.into_split();
                let (mut br, mut bw) = broker.into_split();
                // correlation id → API key, from the requests.
                let apis: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();
                let seen = apis.clone();
                let up = tokio::spawn(async move {
                    while let Ok(req) = read_frame(&mut cr).await {
                        if req.len() >= 8 {
                            let api = i16::from_be_bytes([req[0], req[1]]);
                            let corr = i32::from_be_bytes([req[4], req[5], req[6], req[7]]);
                            seen.lock().unwrap().insert(corr, api);
                        }
                        if write_frame(&mut bw, &req).await.is_err() {
                            return;
                        }
                    }
                });
                while let Ok(mut resp) = read_frame(&mut br).await {
                    let corr = i32::from_be_bytes([resp[0], resp[1], resp[2], resp[3]]);
                    let api = apis.lock().unwrap().remove(&corr);
                    // A Fetch response with records is far longer than an empty one.
                    if api == Some(API_FETCH) && resp.len() > 300 && corrupt.load(std::sync::atomic::Ordering::Relaxed)
                    {
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
    let corrupt = Arc::new(std::sync::atomic::AtomicBool::new(false));
    corrupting_proxy(listener, broker.addr.clone(), corrupt.clone());
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

    corrupt.store(true, std::sync::atomic::Ordering::Relaxed);
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
    corrupt.store(false, std::sync::atomic::Ordering::Relaxed);
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
