//! What Apache Kafka does that the stand-ins did not, each with the ticklake behaviour that now answers it: record
//! timestamps under time retention, timestamps in the future, SASL refusals (in `security`).

use crate::env_or_skip;
use crate::support::*;

/// Kafka deletes records whose timestamps are older than `retention.ms` (7 days by default) at its next retention
/// check: historical rows replayed with their event time as timestamp vanish. replay says so when it sends them,
/// and a sink that finds the offsets it needs gone stops with exit 9 naming how many were lost.
#[test]
fn time_retention_deletes_old_record_timestamps_and_the_sink_says_how_many_were_lost() {
    let env = env_or_skip!();
    // Kafka's default retention (7 days), checked every second instead of every 5 minutes.
    let broker = Broker::with(
        None,
        &["log.retention.ms=604800000", "log.retention.check.interval.ms=1000", "log.initial.task.delay.ms=0"],
    );
    let topic = random_name("retention");
    let tl = || {
        let mut c = env.ticklake();
        c.env("KAFKA_BROKERS", &broker.addr);
        c
    };
    let replay = || {
        let csv = repo_path("data/indices.csv");
        ok(run(tl().args([
            "replay",
            csv.to_str().unwrap(),
            "--topic",
            &topic,
            "--partitions",
            "1",
            "--batch-bytes",
            "16KiB",
        ])))
    };
    let earliest = || -> Option<u64> {
        let out = run(tl().args(["topic", "describe", &topic]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().nth(2)?.split('\t').nth(1)?.parse().ok()
    };
    // The topic keeps everything until the test turns its retention on (topic config retention.ms, set with
    // librdkafka's admin client): what retention deletes, and when, is then up to the broker alone, not a race with
    // the sink's start.
    let retention = |ms: &str| {
        let script = format!(
            "from confluent_kafka.admin import AdminClient, ConfigResource, ConfigEntry, AlterConfigOpType as O\n\
             a = AdminClient({{'bootstrap.servers': '{}'}})\n\
             r = ConfigResource('topic', '{topic}', incremental_configs=[ConfigEntry('retention.ms', '{ms}', incremental_operation=O.SET)])\n\
             a.incremental_alter_configs([r])[r].result(30)",
            broker.addr
        );
        ok(run(env.python().args(["-c", &script])));
    };
    ok(run(tl().args(["topic", "create", &topic, "--partitions", "1"])));
    retention("-1");
    let out = replay();
    assert!(stderr(&out).contains("older than 7 days") && stderr(&out).contains("retention.ms=-1"), "{}", stderr(&out));
    // A lake that holds the first 4,000 records.
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ok(run(sink_cmd(&env, &topic, lake.to_str().unwrap(), &[]).env("KAFKA_BROKERS", &broker.addr)));
    // 4,000 more, then Kafka's default retention (7 days): the next check (every second here) deletes every segment,
    // their timestamps being years old (an event: the earliest offset passes the lake's checkpoint).
    replay();
    retention("604800000");
    let gone = wait_until("retention to delete records the lake needs", || earliest().filter(|e| *e > 4000));
    let out = run(sink_cmd(&env, &topic, lake.to_str().unwrap(), &[]).env("KAFKA_BROKERS", &broker.addr));
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let lost = gone - 4000;
    assert!(stderr(&out).contains(&format!("retention deleted {lost} record(s)")), "{}", stderr(&out));
}

/// Apache Kafka 4 refuses record timestamps more than an hour ahead (`message.timestamp.after.max.ms`): rows dated
/// in the future get the send time as their timestamp (counted, said once), their event time stays in the value.
#[tokio::test(flavor = "multi_thread")]
async fn rows_dated_in_the_future_are_sent_with_the_send_time() {
    let env = env_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("future.csv");
    let next_year = chrono::Datelike::year(&chrono::Utc::now()) + 1;
    ok(run(env.ticklake().args(["sample", "indices", "--rows", "100", "--symbols", "2", "--start"]).args([
        &format!("{next_year}-01-01"),
        "-o",
        csv.to_str().unwrap(),
    ])));
    let topic = random_name("future");
    let before = chrono::Utc::now().timestamp_millis();
    let out = replay_csv(&env, &csv, &topic, 1, &["--log-format", "json"]);
    let after = chrono::Utc::now().timestamp_millis();
    assert!(stderr(&out).contains("more than an hour ahead"), "{}", stderr(&out));
    let records = read_topic(&env.brokers, &topic).await;
    assert_eq!(records.len() as u64, summary_count(&stderr(&out), "sent"));
    for r in &records {
        assert!((before..=after).contains(&r.timestamp_ms), "{}", r.timestamp_ms);
        assert!(r.value["trade_date"].as_str().unwrap().starts_with(&next_year.to_string()), "{}", r.value);
    }
}

/// Kafka's own Java tools from the broker's jars (`kafka-console-producer`, `kafka-console-consumer`).
fn kafka_tool(class: &str, args: &[&str]) -> std::process::Command {
    let libs = std::env::var("TICKLAKE_KAFKA_LIBS").expect("TICKLAKE_KAFKA_LIBS (set by `just proto`)");
    let mut c = std::process::Command::new("java");
    c.args(["-Xmx256m", "-cp", &format!("{libs}/*"), class]).args(args);
    c
}

/// Every record of `topic` as Kafka's console consumer (the Java client) reads it: (partition, key, value).
fn console_consume(env: &TestEnv, topic: &str, n: usize) -> Vec<(i32, String, String)> {
    let mut consumer = kafka_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &["--bootstrap-server", &env.brokers, "--topic", topic, "--from-beginning", "--max-messages", &n.to_string()],
    );
    consumer.args(["--timeout-ms", "60000"]);
    consumer.args(["--formatter-property", "print.partition=true", "--formatter-property", "print.key=true"]);
    let out = ok(run(&mut consumer));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("Partition:"))
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let p = f.next().unwrap().parse().unwrap();
            (p, f.next().unwrap().to_string(), f.next().unwrap().to_string())
        })
        .collect()
}

/// The Java client reads what replay wrote (every CSV row once, keyed by symbol), and the Java producer's default
/// partitioner puts each symbol on the partition replay chose (murmur2, as Kafka computes it).
#[test]
fn the_java_client_reads_every_row_and_partitions_every_symbol_as_replay_does() {
    let env = env_or_skip!();
    let csv = repo_path("data/indices.csv");
    let source = csv_rows(&csv);
    let topic = random_name("java");
    replay_csv(&env, &csv, &topic, 3, &[]);
    let records = console_consume(&env, &topic, source.len());
    assert_eq!(records.len(), source.len());
    let mut from_replay = std::collections::BTreeMap::new();
    let mut seen = std::collections::BTreeMap::<(String, String), usize>::new();
    for (p, key, value) in &records {
        let v: serde_json::Value = serde_json::from_str(value).unwrap();
        assert_eq!(v["symbol"].as_str(), Some(key.as_str()), "{value}");
        *seen.entry((key.clone(), v["trade_date"].as_str().unwrap().to_string())).or_default() += 1;
        assert_eq!(*from_replay.entry(key.clone()).or_insert(*p), *p, "one partition per symbol");
    }
    for r in &source {
        assert_eq!(seen.get(&(r["Index"].clone(), r["Date"].clone())), Some(&1), "{r:?} once");
    }
    // The same keys through the Java producer into a topic of the same partition count.
    let java = random_name("java-keys");
    ok(run(env.ticklake().args(["topic", "create", &java, "--partitions", "3"])));
    let keys: Vec<String> = from_replay.keys().map(|k| format!("{k}\tx")).collect();
    ok(run_with_stdin(
        &mut kafka_tool(
            "org.apache.kafka.tools.ConsoleProducer",
            &["--bootstrap-server", &env.brokers, "--topic", &java, "--property", "parse.key=true"],
        ),
        (keys.join("\n") + "\n").as_bytes(),
    ));
    let by_java: std::collections::BTreeMap<String, i32> =
        console_consume(&env, &java, keys.len()).into_iter().map(|(p, k, _)| (k, p)).collect();
    assert_eq!(by_java, from_replay, "the Java producer's partition for each symbol");
}
