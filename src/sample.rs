//! Deterministic sample data: the CSVs in `data/` and the benchmarks' million-row inputs.
//!
//! A SplitMix64 generator (not `rand`'s, whose streams may change between versions), so a seed gives the same
//! bytes on every machine and every release. Prices are random walks; nothing is taken from real datasets.

use std::io::Write;

use chrono::{Datelike, Duration as Days, NaiveDate, Weekday};

/// Index symbols: the usual dataset's exchanges plus `^GSPC`, whose `^` exercises partition-value escaping.
pub const INDEX_SYMBOLS: [&str; 13] = [
    "NYA",
    "IXIC",
    "HSI",
    "000001.SS",
    "GSPTSE",
    "399001.SZ",
    "NSEI",
    "GDAXI",
    "KS11",
    "SSMI",
    "TWII",
    "J203.JO",
    "^GSPC",
];
const TICK_SYMBOLS: [&str; 8] = ["AAPL", "MSFT", "NVDA", "AMZN", "BRK B", "JPM", "XOM", "TSLA"];
const VENUES: [&str; 4] = ["XNAS", "XNYS", "BATS", "IEXG"];

pub const INDICES_HEADER: &str = "Index,Date,Open,High,Low,Close,Adj Close,Volume,CloseUSD";
pub const TICKS_HEADER: &str = "ts,symbol,price,size,venue";

/// SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// The symbol names for `n` index symbols: the named ones first, then `IDX014`, `IDX015`, ...
pub fn index_symbols(n: usize) -> Vec<String> {
    (0..n).map(|i| INDEX_SYMBOLS.get(i).map_or_else(|| format!("IDX{:03}", i + 1), |s| s.to_string())).collect()
}

/// Which sample to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    Indices,
    Ticks,
}

/// Writes `rows` daily index bars: every symbol on each weekday from `start`, ordered by date then symbol.
pub fn write_indices(
    out: &mut dyn Write,
    rows: u64,
    symbols: usize,
    start: NaiveDate,
    seed: u64,
) -> std::io::Result<()> {
    let mut rng = SplitMix64::new(seed);
    let names = index_symbols(symbols.max(1));
    let mut state: Vec<(f64, f64, bool)> = names
        .iter()
        .map(|_| {
            let level = 100.0 + rng.unit() * 20_000.0;
            let fx = [1.0, 0.128, 0.0067, 0.74, 0.0126, 1.09, 0.00075, 1.13][(rng.next_u64() % 8) as usize];
            let zero_volume = rng.unit() < 0.15;
            (level, fx, zero_volume)
        })
        .collect();
    writeln!(out, "{INDICES_HEADER}")?;
    let mut day = start;
    let mut written = 0;
    while written < rows {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            for (name, (level, fx, zero_volume)) in names.iter().zip(state.iter_mut()) {
                if written == rows {
                    break;
                }
                let open = *level * (1.0 + rng.normal() * 0.002);
                let close = *level * (1.0 + rng.normal() * 0.01).max(0.5);
                let high = open.max(close) * (1.0 + rng.unit() * 0.006);
                let low = open.min(close) * (1.0 - rng.unit() * 0.006);
                let volume = if *zero_volume { 0 } else { 1_000_000 + rng.next_u64() % 900_000_000 };
                let quoted = if name.contains([',', '"', ' ']) { format!("\"{name}\"") } else { name.clone() };
                writeln!(
                    out,
                    "{quoted},{day},{open:.6},{high:.6},{low:.6},{close:.6},{close:.6},{volume}.0,{:.8}",
                    close * *fx
                )?;
                *level = close;
                written += 1;
            }
        }
        day += Days::days(1);
    }
    Ok(())
}

/// Writes `rows` intraday ticks from `start` 09:30 UTC, a few ms to half a second apart, with a `venue` column
/// beyond the preset's four (kept by the `ticks` preset).
pub fn write_ticks(out: &mut dyn Write, rows: u64, symbols: usize, start: NaiveDate, seed: u64) -> std::io::Result<()> {
    let mut rng = SplitMix64::new(seed);
    let n = symbols.clamp(1, TICK_SYMBOLS.len());
    let mut prices: Vec<f64> = (0..n).map(|_| 20.0 + rng.unit() * 480.0).collect();
    let mut ts = start.and_hms_opt(9, 30, 0).expect("valid time").and_utc().timestamp_millis();
    writeln!(out, "{TICKS_HEADER}")?;
    for _ in 0..rows {
        ts += 1 + (rng.next_u64() % 500) as i64;
        let i = (rng.next_u64() % n as u64) as usize;
        prices[i] = (prices[i] * (1.0 + rng.normal() * 0.0005)).max(0.01);
        let size = 1 + rng.next_u64() % 1000;
        let venue = VENUES[(rng.next_u64() % VENUES.len() as u64) as usize];
        let sym = TICK_SYMBOLS[i];
        let ts_text = crate::schema::value::format_timestamp(ts);
        writeln!(out, "{ts_text},{sym},{:.2},{size},{venue}", prices[i])?;
    }
    Ok(())
}

/// Writes the sample to `out` (`.gz` compressed) or stdout.
pub fn write_to(
    layout: Layout,
    out: Option<&std::path::Path>,
    rows: u64,
    symbols: usize,
    start: chrono::NaiveDate,
    seed: u64,
) -> crate::Result<()> {
    let io =
        |source, path: &std::path::Path| crate::Error::Io { context: format!("writing {}", path.display()), source };
    let mut sink: Box<dyn Write> = match out {
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        Some(p) => {
            let f = std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| io(e, p))?);
            if p.extension().is_some_and(|e| e == "gz") {
                Box::new(flate2::write::GzEncoder::new(f, flate2::Compression::default()))
            } else {
                Box::new(f)
            }
        }
    };
    let path = out.unwrap_or(std::path::Path::new("<stdout>"));
    match layout {
        Layout::Indices => write_indices(&mut sink, rows, symbols, start, seed),
        Layout::Ticks => write_ticks(&mut sink, rows, symbols, start, seed),
    }
    .and_then(|_| sink.flush())
    .map_err(|e| io(e, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::row::RowParser;
    use crate::schema::Schema;

    fn generate(
        f: fn(&mut dyn Write, u64, usize, NaiveDate, u64) -> std::io::Result<()>,
        rows: u64,
        seed: u64,
    ) -> String {
        let mut v = Vec::new();
        f(&mut v, rows, 13, NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(), seed).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        assert_eq!(generate(write_indices, 100, 7), generate(write_indices, 100, 7));
        assert_ne!(generate(write_indices, 100, 7), generate(write_indices, 100, 8));
        assert_eq!(generate(write_ticks, 100, 7), generate(write_ticks, 100, 7));
    }

    #[test]
    fn generated_rows_parse_with_the_presets() {
        for (text, schema) in
            [(generate(write_indices, 500, 1), Schema::indices()), (generate(write_ticks, 500, 1), Schema::ticks())]
        {
            let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
            let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
            let parser = RowParser::new(schema, &header).unwrap();
            let mut n = 0;
            for rec in rdr.byte_records() {
                parser.parse(&rec.unwrap()).unwrap();
                n += 1;
            }
            assert_eq!(n, 500);
        }
    }
}
