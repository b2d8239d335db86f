//! Proto-tests: the real `ticklake` binary against a real Kafka-compatible broker and a real S3 server.
//!
//! `just proto` installs and starts the servers and sets the environment (`.servers/env`). Without it these tests
//! say why they skip; with `CI` set, a missing server is a failure, never a skip.
#![deny(unsafe_code, rust_2018_idioms)]

// TestEnv, random names, running the binary, reading a topic back.
mod support;
// a hang is a failure: a test still running after its limit stops the run with the evidence.
mod watchdog;
// replay: delivery exactly once, keys, partitions, order, codecs, timestamps.
mod replay;
// replay's failure paths: bad rows, unreachable brokers, signals.
mod replay_failures;
// topic admin and the console consumer.
mod admin;
// sink: the lake read back with pyarrow, SIGKILL at random moments, rejects, local folders, startup errors.
mod sink;
// S3 faults through a fault-injecting proxy: retries, exactly once, refused credentials.
mod s3_faults;
// credentials: IMDSv2 and ECS credentials rotated and revoked under running sinks (one chain, refreshed ahead).
mod credentials;
// MSK IAM: the SASL token byte for byte what AWS's own signer makes.
mod kafka_iam;
// schema changes: extra columns kept, columns that grow, type conflicts as rejects, the stored table spec.
mod schema_changes;
// the README's examples, run as written against a fresh broker.
mod readme;
// a newcomer's first minutes: per-command advice, plain logs in files, no stray folder, server ownership.
mod newcomer;
// compaction: many small cuts into few files, same rows and order; SIGKILLed while a sink writes, still exactly once.
mod compaction;
// consumer groups: three sinks in one --group, one SIGKILLed, one SIGSTOPped; every offset once; lag in Kafka's tool.
mod group;
// dashboard: the page in headless Chromium (live records, hostile data, the lake moving, a screenshot); its token.
mod dashboard;
// fencing: one writer per Kafka partition of a lake; a second sink stops, a paused one stops when it wakes.
mod fencing;
// athena: the DDL parses with sqlglot and names the columns the sink writes.
mod athena;
// operations: doctor against a broker advertising a wrong address, /metrics scraped mid-run, JSON logs.
mod ops;
// deploy/: systemd units verify, their command lines and example configs parse, cloud-init is valid.
mod deploy;
// broker restart (sqlite storage): replay retries, the sink rides it out and resumes from its checkpoint.
mod broker_restart;
// security: TLS (private CA, mutual) through a rustls terminator, SASL SCRAM against the broker, no leaked secrets.
mod security;
// iceberg: sink --format iceberg read back with pyiceberg (sqlite and Glue catalogs), kills, a concurrent writer, fencing.
mod iceberg;
// lake verify --source on an Iceberg table: from the CSV file to the table exactly once, and a second replay caught.
mod verify_source;
// resource bounds: peak RSS under --max-buffer plus a fixed overhead, 10,000 hive partitions and a skewed stream.
mod resources;
// a new user's trial: bad first records, checks on nothing, errors that end, counts that add up, honest words.
mod trial;
// what Apache Kafka does that the stand-ins did not: time retention, timestamps in the future.
mod reference;
// trino: the engine behind Athena reads the hive lake and the Iceberg table, answering as DuckDB and the CSV.
mod trino;
// Kafka faults: a proxy corrupting fetched batches; the sink stops naming partition and offset, then resumes.
mod kafka_faults;
