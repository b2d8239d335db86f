//! Parsers for single flag values, shared by every command that takes one.

use std::time::Duration;

/// A non-empty environment variable.
pub(crate) fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Flags whose default ticklake reads from the environment itself rather than through clap (clap's usage line in
/// an error would list them as if the user had to pass them), with their variables in order. `LakeArgs::s3` and
/// `config show` both read this table, so what is shown is what is used.
/// The endpoint variables are the AWS SDKs' own: a service's (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_GLUE`) before
/// the general `AWS_ENDPOINT_URL`.
const ENV_DEFAULTS: &[(&str, &[&str])] = &[
    ("s3_endpoint", &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
    ("glue_endpoint", &["AWS_ENDPOINT_URL_GLUE", "AWS_ENDPOINT_URL"]),
    ("region", &["AWS_REGION", "AWS_DEFAULT_REGION"]),
];

/// The environment's value for flag `key` (snake_case) of `ENV_DEFAULTS`, and the variable it came from.
pub(crate) fn env_default(key: &str) -> Option<(&'static str, String)> {
    let (_, vars) = ENV_DEFAULTS.iter().find(|(k, _)| *k == key)?;
    vars.iter().find_map(|v| env_value(v).map(|value| (*v, value)))
}

/// `0,2,5-7` → [0, 2, 5, 6, 7].
pub fn parse_partition_list(s: &str) -> Result<Vec<i32>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("--partitions '{s}': '{part}' is not a partition number or range like 5-7");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (i32, i32) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
                if a > b || a < 0 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok().filter(|p: &i32| *p >= 0).ok_or_else(bad)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        return Err(format!("--partitions '{s}' names no partition"));
    }
    Ok(out)
}

/// `10s`, `250ms`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("'{s}' is not a duration like 10s, 250ms or 2m: {e}"))
}

/// `512KiB`, `64MiB`, `1000` (bytes).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a size like 512KiB or 64MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use B, KiB, MiB or GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("'{s}' is too large"))
}
