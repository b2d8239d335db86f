"""Set-up shared by the benchmarks: sample data and topics made with the ticklake binary under test."""

import subprocess


def sample_indices(binary, path, rows, symbols=70, start="1965-01-01"):
    """Deterministic daily index bars (`ticklake sample indices`) written to `path`."""
    subprocess.run([binary, "sample", "indices", "--rows", str(rows), "--symbols", str(symbols), "--start", start,
                    "-o", path], check=True)


def replay_into(binary, csv, topic, partitions, env):
    """Replays `csv` flat out into a new `topic` with `partitions` (set-up, not measured)."""
    subprocess.run([binary, "replay", csv, "--topic", topic, "--partitions", str(partitions), "--progress", "never"],
                   check=True, env=env, stderr=subprocess.DEVNULL)
