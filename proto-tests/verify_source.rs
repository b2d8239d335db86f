//! `lake verify --source FILE` on an Iceberg table (the REST catalog on MinIO): exactly once from the CSV file to
//! the table says yes after a replay and a sink; after the same file is replayed again (every line twice in the
//! topic) and the sink caught up, it says NO (exit 10) while the table's own check still passes.

use crate::env_or_skip;
use crate::iceberg::Ice;
use crate::support::*;

#[test]
fn an_iceberg_table_is_checked_from_the_csv_file_and_a_second_replay_is_caught() {
    let env = env_or_skip!();
    let topic = random_name("ice-source");
    let csv = repo_path("data/indices.csv");
    replay_csv(&env, &csv, &topic, 3, &[]);
    let ice = Ice::rest();
    ok(run(&mut ice.sink(&env, &topic, &[])));
    let verify = |expect_ok: bool| -> String {
        let out = run(env.ticklake().args(["lake", "verify", "--topic", &topic, "--to", &ice.to]).args([
            "--table",
            &ice.table,
            "--catalog",
            &ice.catalog,
            "--source",
            csv.to_str().unwrap(),
        ]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let want = if expect_ok { Some(0) } else { Some(10) };
        assert_eq!(out.status.code(), want, "{text}\n{}", stderr(&out));
        text
    };
    let text = verify(true);
    assert!(text.contains("topic: 4000 of 4000 good line(s) once"), "{text}");
    assert!(text.contains("from the file to the lake, exactly once: yes"), "{text}");

    // The same file again: every line twice in the topic, so twice in the table once the sink caught up.
    replay_csv(&env, &csv, &topic, 3, &[]);
    ok(run(&mut ice.sink(&env, &topic, &[])));
    let text = verify(false);
    assert!(text.contains("4000 more than once"), "{text}");
    assert!(text.contains("from the file to the lake, exactly once: NO"), "{text}");
    // The table itself holds every offset of the topic once: only the file-to-lake check sees the duplicates.
    assert!(ice.verify(&env, &topic).contains("exactly once: yes"));
}
