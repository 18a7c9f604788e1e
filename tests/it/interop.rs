//! The lake is plain Hive-partitioned Parquet: DuckDB, polars and pyarrow read it unchanged.
//! Needs the Python packages that `scripts/setup.sh` installs.

use crate::Env;

#[test]
fn duckdb_polars_and_pyarrow_read_the_lake_and_agree_with_omnistream() {
    let env = Env::new();
    env.ok(&["simulate", "--generations", "60", "--nodes", "4"]);
    env.ok(&["jobs", "run", "lake-sink", "--once"]);
    let ours = env.sql("SELECT count(*) AS n, round(sum(latency_ms), 3) AS s FROM model_call");
    let (n, s) = (
        ours[0]["n"].as_i64().unwrap(),
        ours[0]["s"].as_f64().unwrap(),
    );
    let lake = env.data().join("lake");
    let script = format!(
        r#"
import duckdb, polars as pl, pyarrow.dataset as ds
lake = "{lake}"
d = duckdb.sql(f"SELECT count(*), round(sum(latency_ms), 3), min(date)::VARCHAR FROM read_parquet('{{lake}}/model_call/*/*.parquet', hive_partitioning=true)").fetchall()[0]
p = pl.scan_parquet(f"{{lake}}/model_call/**/*.parquet", hive_partitioning=True).select(pl.len(), pl.col("latency_ms").sum().round(3)).collect().row(0)
t = ds.dataset(f"{{lake}}/model_call", format="parquet", partitioning="hive").to_table()
ts = str(t.schema.field("emitted_at").type)
print(d[0], d[1], d[2], p[0], p[1], t.num_rows, ts)
"#,
        lake = lake.display()
    );
    let out = std::process::Command::new(
        std::env::var("OMNISTREAM_PYTHON").unwrap_or_else(|_| "python3".into()),
    )
    .arg("-c")
    .arg(script)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "python failed (run scripts/setup.sh):\n{}",
        crate::describe(&out)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(f[0].parse::<i64>().unwrap(), n, "duckdb count: {text}");
    assert!(
        (f[1].parse::<f64>().unwrap() - s).abs() < 1e-6,
        "duckdb sum: {text}"
    );
    assert_eq!(f[2], "2026-11-01", "duckdb hive partition: {text}");
    assert_eq!(f[3].parse::<i64>().unwrap(), n, "polars count: {text}");
    assert!(
        (f[4].parse::<f64>().unwrap() - s).abs() < 1e-6,
        "polars sum: {text}"
    );
    assert_eq!(f[5].parse::<i64>().unwrap(), n, "pyarrow rows: {text}");
    assert_eq!(
        (f[6], f[7]),
        ("timestamp[us,", "tz=UTC]"),
        "pyarrow time type: {text}"
    );
}

/// `bench ingest` end to end at a small size: the same events landed by omnistream and converted
/// by DuckDB (the bench fails unless both hold every event), with wall and CPU time for each side.
#[test]
fn bench_ingest_lands_the_events_and_reports_time_and_cpu_for_both_sides() {
    let env = Env::new();
    let dir = env.path("bench");
    let out = env.ok(&[
        "bench",
        "ingest",
        "--events",
        "3000",
        "--runs",
        "1",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let line = |label: &str| {
        out.lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no '{label}' line in:\n{out}"))
            .to_string()
    };
    // Every number on a line, in order.
    let numbers = |line: &str| -> Vec<f64> {
        line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    let total = numbers(&line("omnistream total"));
    let ratio = numbers(&line("ratio:"));
    let cpu = numbers(&line("CPU time:"));
    assert!(total[0] > 0.0, "{out}");
    assert!(ratio[0] > 0.0, "{out}");
    // omnistream's CPU, DuckDB's, and their ratio, which must agree (up to the rounding of the
    // printed seconds, a few percent at this size).
    assert!(cpu.len() == 3 && cpu[0] > 0.0 && cpu[1] > 0.0, "{out}");
    assert!((cpu[0] / cpu[1] / cpu[2] - 1.0).abs() < 0.05, "{out}");
}
