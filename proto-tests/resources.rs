//! Resource bounds: the sink's peak RSS stays under `--max-buffer` plus a fixed overhead, with 10,000 hive
//! partitions open and with a skewed stream (one symbol 90% of the rows). Exactly once either way.

use std::io::Write;

use crate::env_or_skip;
use crate::support::*;

/// What the process needs besides its row buffer: code and the runtime (about 50 MiB for the debug build these
/// tests run), one decoded fetch per Kafka partition, two Parquet encodes in flight, and the allocator's free
/// pages. Measured at 130-190 MiB over a 32 MiB budget (see the test output; it varies with timing), whether 1,000
/// or 10,000 hive partitions are open: it does not grow with them. A regression that holds rows twice, or keeps a
/// writer per hive partition, blows through it.
const OVERHEAD_MIB: u64 = 200;
const MAX_BUFFER_MIB: u64 = 32;

/// Index rows: `rows` of them, `hot` percent on symbol `HOT`, the rest over `symbols` symbols.
fn write_csv(path: &std::path::Path, rows: usize, symbols: usize, hot: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "Index,Date,Open,High,Low,Close,Adj Close,Volume,CloseUSD").unwrap();
    let start = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let mut cold = 0;
    for i in 0..rows {
        let symbol = if i % 100 < hot {
            "HOT".to_string()
        } else {
            cold += 1;
            format!("S{:05}", cold % symbols)
        };
        let day = start + chrono::Duration::days((i / symbols.max(1)) as i64 % 3000);
        let p = 100.0 + (i % 997) as f64 * 0.25;
        writeln!(f, "{symbol},{day},{p},{},{},{p},{p},{},{}", p + 1.0, p - 1.0, 1000 + i % 5000, p * 0.9).unwrap();
    }
}

fn sink_peak_rss(env: &TestEnv, rows: usize, symbols: usize, hot: usize) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("rows.csv");
    write_csv(&csv, rows, symbols, hot);
    let topic = random_name("rss");
    replay_csv(env, &csv, &topic, 3, &[]);
    let to = dir.path().join("lake");
    let max_buffer = format!("{MAX_BUFFER_MIB}MiB");
    let out = ok(run(&mut sink_cmd(
        env,
        &topic,
        to.to_str().unwrap(),
        &["--partition-by", "symbol", "--max-buffer", &max_buffer],
    )));
    let err = stderr(&out);
    let line = err.lines().find(|l| l.starts_with("sink done:")).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains(&format!("sink done: {rows} records")), "{line}");
    let peak: u64 = line.rsplit("peak RSS ").next().unwrap().trim_end_matches(" MiB").parse().unwrap();
    let verify = ok(run(env.ticklake().args(["lake", "verify", "--topic", &topic, "--to", to.to_str().unwrap()])));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("exactly once: yes"));
    let partitions = std::fs::read_dir(&to)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("symbol="))
        .count();
    eprintln!(
        "resources: {rows} rows, {partitions} hive partitions, {hot}% on one symbol: peak RSS {peak} MiB (--max-buffer {MAX_BUFFER_MIB} MiB)"
    );
    assert!(partitions >= symbols.min(rows), "{partitions} hive partitions");
    peak
}

#[test]
fn ten_thousand_hive_partitions_stay_within_the_buffer_budget() {
    let env = env_or_skip!();
    let peak = sink_peak_rss(&env, 200_000, 10_000, 0);
    assert!(peak <= MAX_BUFFER_MIB + OVERHEAD_MIB, "peak RSS {peak} MiB > {MAX_BUFFER_MIB} + {OVERHEAD_MIB} MiB");
}

#[test]
fn a_skewed_stream_stays_within_the_buffer_budget() {
    let env = env_or_skip!();
    let peak = sink_peak_rss(&env, 400_000, 1_000, 90);
    assert!(peak <= MAX_BUFFER_MIB + OVERHEAD_MIB, "peak RSS {peak} MiB > {MAX_BUFFER_MIB} + {OVERHEAD_MIB} MiB");
}
