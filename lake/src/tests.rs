//! Tests of the lake's commit protocol, compaction and SQL against real files.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::compact::{self, CompactOptions};
use crate::error::LakeError;
use crate::lake::Lake;
use crate::txlog::{Action, TableDef};

fn def() -> TableDef {
    TableDef {
        name: "events".into(),
        schema: Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new(
                "emitted_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("value", DataType::Int64, true),
        ]),
        partitioned_by_date: true,
        time_column: Some("emitted_at".into()),
    }
}

const DAY: i64 = 86_400_000_000;

fn rows(first: i64, n: i64, day: i64) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(def().schema),
        vec![
            Arc::new(StringArray::from_iter_values(
                (first..first + n).map(|i| format!("id-{i}")),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values((0..n).map(|i| day * DAY + i))
                    .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from_iter_values(first..first + n)),
        ],
    )
    .unwrap()
}

fn add(lake: &Lake, writer: &str, batch: RecordBatch, day: i64) -> crate::txlog::DataFile {
    let w = lake.writer(writer).unwrap();
    let date = crate::lake::date_of(day * DAY);
    let file = w.write_file(&def(), Some(&date), &[batch]).unwrap();
    let mut actions = vec![Action::Add(file.clone())];
    if lake.snapshot().unwrap().table("events").is_none() {
        actions.insert(0, Action::DefineTable(def()));
    }
    w.commit(actions).unwrap();
    file
}

async fn sql(lake: &Lake, query: &str) -> Vec<RecordBatch> {
    let snapshot = lake.snapshot().unwrap();
    let ctx = crate::session(lake, &snapshot).unwrap();
    crate::query(&ctx, query).await.unwrap().1
}

fn scalar(batches: &[RecordBatch]) -> i64 {
    arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(batches[0].column(0))
        .value(0)
}

#[tokio::test]
async fn committed_files_are_queryable_by_name_with_a_date_partition() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    add(&lake, "w", rows(0, 10, 20_000), 20_000);
    add(&lake, "w", rows(10, 5, 20_001), 20_001);
    assert_eq!(scalar(&sql(&lake, "SELECT count(*) FROM events").await), 15);
    assert_eq!(
        scalar(
            &sql(
                &lake,
                "SELECT count(*) FROM events WHERE date = DATE '2024-10-05'"
            )
            .await
        ),
        5
    );
    assert_eq!(
        scalar(
            &sql(
                &lake,
                "SELECT sum(value) FROM events WHERE date < '2024-10-05'"
            )
            .await
        ),
        45
    );
    // Plain Hive layout that other engines read.
    assert!(dir.path().join("events/date=2024-10-04").is_dir());
}

#[tokio::test]
async fn uncommitted_staged_files_are_discarded_and_never_seen() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    add(&lake, "w", rows(0, 3, 20_000), 20_000);
    {
        let w = lake.writer("w").unwrap();
        w.write_file(&def(), Some("2024-10-03"), &[rows(3, 3, 20_000)])
            .unwrap();
        // "crash": dropped without a commit
    }
    let staging = dir.path().join("_omnistream/staging/w");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 1);
    assert_eq!(scalar(&sql(&lake, "SELECT count(*) FROM events").await), 3);
    let reopened = Lake::open(dir.path()).unwrap();
    let _writer = reopened.writer("w").unwrap();
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
}

#[tokio::test]
async fn a_commit_whose_renames_were_interrupted_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let file = add(&lake, "w", rows(0, 4, 20_000), 20_000);
    // Undo the rename, as if the process died right after the commit point.
    let staged = dir.path().join(file.staged.as_ref().unwrap());
    std::fs::rename(dir.path().join(&file.path), &staged).unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    assert!(dir.path().join(&file.path).exists());
    assert!(!staged.exists());
    assert_eq!(scalar(&sql(&lake, "SELECT count(*) FROM events").await), 4);
}

#[test]
fn only_one_process_writes_under_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let _w = lake.writer("lake-sink").unwrap();
    let other = Lake::open(dir.path()).unwrap();
    assert!(matches!(
        other.writer("lake-sink"),
        Err(LakeError::WriterBusy { .. })
    ));
    assert!(other.writer("compact").is_ok());
    assert!(other.writer("../x").is_err());
}

#[tokio::test]
async fn compaction_swaps_files_atomically_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    for i in 0..6 {
        add(&lake, "w", rows(i * 100, 100, 20_000), 20_000);
    }
    add(&lake, "w", rows(1000, 7, 20_001), 20_001);
    let before = sql(&lake, "SELECT sum(value), count(*) FROM events").await;
    let writer = lake.writer("compact").unwrap();
    let snapshot = lake.snapshot().unwrap();
    let tasks = compact::plan(&snapshot, Some("events"), &CompactOptions::default()).unwrap();
    assert_eq!(tasks.len(), 1, "only the date with several files");
    let outcome = compact::run(
        &writer,
        &snapshot,
        &tasks[0],
        &CompactOptions::default(),
        |_| {},
    )
    .unwrap();
    assert_eq!(
        (outcome.files_before, outcome.files_after, outcome.rows),
        (6, 1, 600)
    );
    let after = sql(&lake, "SELECT sum(value), count(*) FROM events").await;
    assert_eq!(before, after);
    // Old files are gone from disk, so other engines do not count rows twice either.
    let on_disk = std::fs::read_dir(dir.path().join("events/date=2024-10-04"))
        .unwrap()
        .count();
    assert_eq!(on_disk, 1);
    // A second compaction of the same (stale) task conflicts instead of losing data.
    let err = compact::run(
        &writer,
        &snapshot,
        &tasks[0],
        &CompactOptions::default(),
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, LakeError::Conflict(_)), "{err}");
    assert_eq!(
        sql(&lake, "SELECT sum(value), count(*) FROM events").await,
        after
    );
    assert!(compact::plan(&snapshot, Some("nope"), &CompactOptions::default()).is_err());
}

#[tokio::test]
async fn checkpoints_let_a_new_reader_skip_history() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    for i in 0..(crate::txlog::CHECKPOINT_INTERVAL as i64 + 3) {
        add(&lake, "w", rows(i, 1, 20_000), 20_000);
    }
    assert!(
        dir.path()
            .join(format!(
                "_omnistream/checkpoints/{:020}.json",
                crate::txlog::CHECKPOINT_INTERVAL
            ))
            .exists()
    );
    // Remove the commits the checkpoint covers: a fresh reader must not need them.
    for seq in 1..=crate::txlog::CHECKPOINT_INTERVAL {
        std::fs::remove_file(
            dir.path()
                .join(format!("_omnistream/commits/{seq:020}.json")),
        )
        .unwrap();
    }
    let fresh = Lake::open(dir.path()).unwrap();
    assert_eq!(
        fresh.snapshot().unwrap().seq,
        crate::txlog::CHECKPOINT_INTERVAL + 3
    );
    assert_eq!(
        scalar(&sql(&fresh, "SELECT count(*) FROM events").await),
        crate::txlog::CHECKPOINT_INTERVAL as i64 + 3
    );
}

#[tokio::test]
async fn the_sql_surface_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    add(&lake, "w", rows(0, 1, 20_000), 20_000);
    let snapshot = lake.snapshot().unwrap();
    let ctx = crate::session(&lake, &snapshot).unwrap();
    for statement in [
        "CREATE TABLE t AS SELECT 1",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "COPY events TO '/tmp/out.parquet'",
        "INSERT INTO events SELECT * FROM events",
        "DROP TABLE events",
        "SET datafusion.execution.batch_size = 1",
        "SELECT * FROM '/etc/passwd'",
    ] {
        let err = crate::query(&ctx, statement).await.unwrap_err();
        assert!(matches!(err, LakeError::Plan(_)), "{statement}: {err}");
    }
    let err = crate::query(&ctx, "SELECT * FROM nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope") && !err.contains("datafusion.public"),
        "{err}"
    );
}

#[tokio::test]
async fn files_outside_a_time_filter_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    // Three files of one day: rows at 0..10 µs, 1000..1010 µs, 2000..2010 µs past midnight.
    for (i, first) in [0i64, 1000, 2000].iter().enumerate() {
        let batch = RecordBatch::try_new(
            Arc::new(def().schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..10).map(|j| format!("id-{i}-{j}")),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        (0..10).map(|j| 20_000 * DAY + first + j),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from_iter_values(0..10)),
            ],
        )
        .unwrap();
        add(&lake, "w", batch, 20_000);
    }
    // Remove the middle file from disk: a query that does not need it must not open it.
    let snapshot = lake.snapshot().unwrap();
    let middle = snapshot
        .table("events")
        .unwrap()
        .files
        .values()
        .find(|f| f.min_time_us == Some(20_000 * DAY + 1000))
        .unwrap()
        .clone();
    std::fs::remove_file(dir.path().join(&middle.path)).unwrap();
    let t = |us: i64| {
        chrono::DateTime::from_timestamp_micros(20_000 * DAY + us)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    let q = format!(
        "SELECT count(*) FROM events WHERE emitted_at >= TIMESTAMP '{}' AND emitted_at < TIMESTAMP '{}'",
        t(2000),
        t(3000)
    );
    assert_eq!(scalar(&sql(&lake, &q).await), 10);
    let q = format!(
        "SELECT count(*) FROM events WHERE emitted_at < TIMESTAMP '{}'",
        t(1000)
    );
    assert_eq!(scalar(&sql(&lake, &q).await), 10);
    // And one that needs it fails, so the pruning above is what kept the others working.
    let snapshot = lake.snapshot().unwrap();
    let ctx = crate::session(&lake, &snapshot).unwrap();
    assert!(
        crate::query(&ctx, "SELECT count(*) FROM events")
            .await
            .is_err()
    );
}

#[test]
fn rows_split_by_date_keep_their_order_and_runs_are_slices() {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "emitted_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("value", DataType::Int64, false),
    ]));
    // Days 1, 1, 2, 2, 1, 3, none: day 1 is scattered, days 2 and 3 are runs.
    let times = [
        Some(DAY),
        Some(DAY + 5),
        Some(2 * DAY),
        Some(2 * DAY + 1),
        Some(DAY + 9),
        Some(3 * DAY),
        None,
    ];
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(TimestampMicrosecondArray::from(times.to_vec()).with_timezone("UTC")),
            Arc::new(Int64Array::from_iter_values(0..times.len() as i64)),
        ],
    )
    .unwrap();
    let parts = crate::split_by_date(&batch, "emitted_at").unwrap();
    let values = |date: &str| -> Vec<i64> {
        parts[date]
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec()
    };
    assert_eq!(
        parts.keys().collect::<Vec<_>>(),
        ["1970-01-01", "1970-01-02", "1970-01-03", "1970-01-04"]
    );
    assert_eq!(values("1970-01-01"), [6], "no time: the epoch partition");
    assert_eq!(values("1970-01-02"), [0, 1, 4]);
    assert_eq!(values("1970-01-03"), [2, 3]);
    assert_eq!(values("1970-01-04"), [5]);
    // A run shares the input's memory: day 2's values are the input's from row 2 on.
    let run = parts["1970-01-03"].column(1).to_data();
    let input = batch.column(1).to_data();
    assert_eq!(
        run.buffers()[0].as_ptr(),
        input.buffers()[0]
            .as_ptr()
            .wrapping_add(2 * size_of::<i64>())
    );
}

#[test]
fn columns_of_mostly_distinct_values_are_written_without_a_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let batch = |n: i64| {
        RecordBatch::try_new(
            Arc::new(def().schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("id-{i}")),
                )),
                // Distinct times, and a value with seven distinct numbers.
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values((0..n).map(|i| 3 * DAY + i))
                        .with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 7))),
            ],
        )
        .unwrap()
    };
    let dictionaries = |n: i64| {
        let file = add(&lake, "w", batch(n), 3);
        let reader = parquet::file::reader::SerializedFileReader::new(
            std::fs::File::open(lake.path_of(&file.path)).unwrap(),
        )
        .unwrap();
        let metadata = parquet::file::reader::FileReader::metadata(&reader).row_group(0);
        ["event_id", "emitted_at", "value"].map(|name| {
            let column = (0..metadata.num_columns())
                .map(|i| metadata.column(i))
                .find(|c| c.column_path().string() == name)
                .unwrap();
            column.dictionary_page_offset().is_some()
        })
    };
    assert_eq!(dictionaries(5000), [false, false, true]);
    // Too few rows to judge: only the known unique columns go without.
    assert_eq!(dictionaries(100), [false, true, true]);
}
