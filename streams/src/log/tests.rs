//! Tests of the embedded log against real files.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};

use super::*;
use crate::error::StreamsError;
use crate::registry::Topic;

/// A dead-letter batch is the simplest to build by hand: strings and a few nullable columns.
fn batch(topic: Topic, ids: &[&str]) -> RecordBatch {
    let schema = topic.schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| -> Arc<dyn Array> {
            match f.name().as_str() {
                "event_id" | "correlation_id" | "node_id" => {
                    Arc::new(StringArray::from_iter_values(ids.iter().copied()))
                }
                _ if !f.is_nullable() => match f.data_type() {
                    arrow::datatypes::DataType::Utf8 => {
                        Arc::new(StringArray::from_iter_values(ids.iter().map(|_| "x")))
                    }
                    arrow::datatypes::DataType::Int64 => {
                        Arc::new(arrow::array::Int64Array::from(vec![1; ids.len()]))
                    }
                    arrow::datatypes::DataType::Timestamp(_, tz) => Arc::new(
                        arrow::array::TimestampMicrosecondArray::from(vec![0; ids.len()])
                            .with_timezone_opt(tz.clone()),
                    ),
                    other => panic!("no filler for {other}"),
                },
                _ => arrow::array::new_null_array(f.data_type(), ids.len()),
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

fn ids(batches: &[LogBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let col = b
                .batch
                .column_by_name("event_id")
                .unwrap()
                .as_string::<i32>()
                .clone();
            (0..col.len()).map(move |i| col.value(i).to_string())
        })
        .collect()
}

fn open(dir: &std::path::Path) -> EmbeddedLog {
    EmbeddedLog::open(EmbeddedLogConfig::new(dir)).unwrap()
}

fn segment_path(dir: &std::path::Path, topic: Topic) -> std::path::PathBuf {
    dir.join(topic.name())
        .join("0")
        .join(format!("{:020}.log", 0))
}

#[test]
fn append_then_read_from_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let t = Topic::DeadLetter;
    assert_eq!(
        log.append(t, &batch(t, &["a", "b", "c"])).unwrap()[0].base_offset,
        0
    );
    assert_eq!(
        log.append(t, &batch(t, &["d", "e"])).unwrap()[0].base_offset,
        3
    );
    assert_eq!(
        log.offsets(t, 0).unwrap(),
        PartitionOffsets { start: 0, end: 5 }
    );
    assert_eq!(
        ids(&log.read(t, 0, 0, 100).unwrap()),
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(ids(&log.read(t, 0, 1, 100).unwrap()), ["b", "c", "d", "e"]);
    let from_four = log.read(t, 0, 4, 100).unwrap();
    assert_eq!(ids(&from_four), ["e"]);
    assert_eq!(from_four[0].base_offset, 4);
    assert!(log.read(t, 0, 5, 100).unwrap().is_empty());
    // max_records bounds whole frames: the first frame alone already reaches 2 records.
    assert_eq!(ids(&log.read(t, 0, 0, 2).unwrap()), ["a", "b", "c"]);
}

#[test]
fn a_second_process_view_sees_appends_and_reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topic::DeadLetter;
    let writer = open(dir.path());
    let reader = open(dir.path());
    writer.append(t, &batch(t, &["a"])).unwrap();
    assert_eq!(ids(&reader.read(t, 0, 0, 10).unwrap()), ["a"]);
    writer.append(t, &batch(t, &["b"])).unwrap();
    reader.append(t, &batch(t, &["c"])).unwrap();
    writer.append(t, &batch(t, &["d"])).unwrap();
    drop((writer, reader));
    assert_eq!(
        ids(&open(dir.path()).read(t, 0, 0, 10).unwrap()),
        ["a", "b", "c", "d"]
    );
}

#[test]
fn a_torn_tail_is_truncated_on_open_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topic::DeadLetter;
    let log = open(dir.path());
    log.append(t, &batch(t, &["a", "b"])).unwrap();
    drop(log);
    let path = segment_path(dir.path(), t);
    let good_len = fs::metadata(&path).unwrap().len();
    // A crash in the middle of the next write leaves part of a frame.
    let next = frame::encode(&batch(t, &["c"]), 2, 0).unwrap();
    for cut in [3, frame::HEADER_LEN + 5, next.len() - 1] {
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&next[..cut])
            .unwrap();
        let log = open(dir.path());
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            good_len,
            "cut at {cut} not truncated"
        );
        assert_eq!(log.offsets(t, 0).unwrap().end, 2);
        drop(log);
    }
    let log = open(dir.path());
    log.append(t, &batch(t, &["c"])).unwrap();
    assert_eq!(ids(&log.read(t, 0, 0, 10).unwrap()), ["a", "b", "c"]);
}

#[test]
fn a_reader_does_not_serve_a_frame_still_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topic::DeadLetter;
    let log = open(dir.path());
    log.append(t, &batch(t, &["a"])).unwrap();
    let path = segment_path(dir.path(), t);
    let next = frame::encode(&batch(t, &["b"]), 1, 0).unwrap();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&next[..next.len() / 2]).unwrap();
    let reader = open_without_recovery(dir.path());
    assert_eq!(ids(&reader.read(t, 0, 0, 10).unwrap()), ["a"]);
    f.write_all(&next[next.len() / 2..]).unwrap();
    assert_eq!(ids(&reader.read(t, 0, 1, 10).unwrap()), ["b"]);
}

#[test]
fn a_segment_cut_short_under_a_reader_is_reported_not_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topic::DeadLetter;
    let log = open(dir.path());
    log.append(t, &batch(t, &["a"])).unwrap();
    log.append(t, &batch(t, &["b"])).unwrap();
    // The reader has both frames indexed; then something cuts the second one off the file.
    let reader = open(dir.path());
    assert_eq!(ids(&reader.read(t, 0, 0, 10).unwrap()), ["a", "b"]);
    let path = segment_path(dir.path(), t);
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 8)
        .unwrap();
    let (_, base_offset, detail) = corruption(reader.read(t, 0, 1, 10));
    assert_eq!(base_offset, 1);
    assert!(detail.contains("cut short"), "{detail}");
    assert_eq!(ids(&reader.read(t, 0, 0, 1).unwrap()), ["a"]);
}

/// The position, base offset and detail of the corruption a read reports (any other outcome fails).
fn corruption(read: Result<Vec<LogBatch>>) -> (u64, u64, String) {
    match read {
        Err(StreamsError::Corrupt {
            position,
            base_offset,
            detail,
            ..
        }) => (position, base_offset, detail),
        other => panic!("expected corruption, got {other:?}"),
    }
}

/// A view of the log while another process holds the writer lock (so no recovery runs).
fn open_without_recovery(dir: &std::path::Path) -> EmbeddedLog {
    let lock_path = dir
        .join(Topic::DeadLetter.name())
        .join("0")
        .join("writer.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.lock().unwrap();
    let log = open(dir);
    lock.unlock().unwrap();
    log
}

#[test]
fn a_crc_mismatch_in_the_middle_is_reported_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topic::DeadLetter;
    let log = open(dir.path());
    log.append(t, &batch(t, &["a"])).unwrap();
    log.append(t, &batch(t, &["b"])).unwrap();
    drop(log);
    let path = segment_path(dir.path(), t);
    let mut bytes = fs::read(&path).unwrap();
    bytes[frame::HEADER_LEN + 40] ^= 0xff; // inside the first frame's payload
    fs::write(&path, &bytes).unwrap();
    let log = open(dir.path());
    let (position, base_offset, detail) = corruption(log.read(t, 0, 0, 10));
    assert_eq!((position, base_offset), (0, 0));
    assert!(detail.contains("CRC"), "{detail}");
    // The frame after it is intact and still served.
    assert_eq!(ids(&log.read(t, 0, 1, 10).unwrap()), ["b"]);
}

#[test]
fn garbage_before_valid_frames_is_corruption_and_blocks_appends() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topic::DeadLetter;
    let log = open(dir.path());
    for id in ["a", "b", "c"] {
        log.append(t, &batch(t, &[id])).unwrap();
    }
    drop(log);
    let path = segment_path(dir.path(), t);
    let mut bytes = fs::read(&path).unwrap();
    let second = frame::encode(&batch(t, &["a"]), 0, 0).unwrap().len();
    bytes[second] ^= 0x55; // the second frame's magic
    fs::write(&path, &bytes).unwrap();
    let err = EmbeddedLog::open(EmbeddedLogConfig::new(dir.path()))
        .err()
        .expect("open must refuse");
    assert!(matches!(err, StreamsError::Corrupt { .. }), "{err}");
    assert_eq!(fs::read(&path).unwrap(), bytes, "nothing was truncated");
}

#[test]
fn consumer_groups_commit_and_resume_independently() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topic::DeadLetter;
    let log = open(dir.path());
    log.append(t, &batch(t, &["a", "b", "c", "d"])).unwrap();
    assert!(log.committed("g1", t).unwrap().is_empty());
    log.commit("g1", t, &BTreeMap::from([(0, 3)])).unwrap();
    log.commit("g2", t, &BTreeMap::from([(0, 1)])).unwrap();
    drop(log);
    let log = open(dir.path());
    let g1 = log.committed("g1", t).unwrap()[&0];
    let g2 = log.committed("g2", t).unwrap()[&0];
    assert_eq!(ids(&log.read(t, 0, g1, 10).unwrap()), ["d"]);
    assert_eq!(ids(&log.read(t, 0, g2, 10).unwrap()), ["b", "c", "d"]);
    assert_eq!(log.groups().unwrap(), ["g1", "g2"]);
    assert!(log.commit("../evil", t, &BTreeMap::new()).is_err());
}

#[test]
fn partitions_keep_a_key_together_and_segments_roll() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topic::NodeHeartbeat;
    let mut config = EmbeddedLogConfig::new(dir.path());
    config.default_partitions = 3;
    config.segment_bytes = 1; // every frame starts a segment
    let log = EmbeddedLog::open(config).unwrap();
    let keys: Vec<String> = (0..30).map(|i| format!("node-{}", i % 7)).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    log.append(t, &batch(t, &refs)).unwrap();
    log.append(t, &batch(t, &refs)).unwrap();
    assert_eq!(log.partitions(t).unwrap(), 3);
    let mut total = 0;
    for p in 0..3 {
        let read = ids(&log.read(t, p, 0, 1000).unwrap());
        total += read.len();
        for id in &read {
            assert_eq!(
                embedded::partition_for(id, 3),
                p,
                "{id} in the wrong partition"
            );
        }
        let segments = fs::read_dir(dir.path().join(t.name()).join(p.to_string()))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".log")
            })
            .count();
        assert_eq!(segments, if read.is_empty() { 0 } else { 2 });
    }
    assert_eq!(total, 60);
    // Partition counts are fixed at creation: a later open with another default keeps 3.
    drop(log);
    assert_eq!(open(dir.path()).partitions(t).unwrap(), 3);
}

#[test]
fn retention_deletes_old_closed_segments_and_reads_start_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topic::DeadLetter;
    let mut config = EmbeddedLogConfig::new(dir.path());
    config.segment_bytes = 1;
    config.retention = Some(std::time::Duration::ZERO);
    let log = EmbeddedLog::open(config).unwrap();
    for id in ["a", "b", "c"] {
        log.append(t, &batch(t, &[id])).unwrap();
    }
    let offsets = log.offsets(t, 0).unwrap();
    assert_eq!(offsets, PartitionOffsets { start: 2, end: 3 });
    assert_eq!(ids(&log.read(t, 0, 0, 10).unwrap()), ["c"]);
}

#[test]
fn a_batch_with_another_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let err = log
        .append(Topic::ModelCall, &batch(Topic::DeadLetter, &["a"]))
        .unwrap_err();
    assert!(matches!(err, StreamsError::SchemaMismatch { .. }), "{err}");
}

/// Damage to the last frame (a flipped byte, a zeroed tail, a cut), with and without a consumer
/// group committed past it. Without one, it is a torn write: cut, and appends continue at its
/// offsets. With one, the frame was acknowledged and read: reported as corruption of acknowledged
/// data, nothing cut, and no offset the group read past is ever given to a new event.
#[test]
fn damage_to_the_last_frame_is_cut_only_when_no_consumer_read_past_it() {
    type Damage = fn(&mut Vec<u8>, usize);
    let damages: [(&str, Damage); 3] = [
        ("flip", |b, at| b[at + frame::HEADER_LEN + 40] ^= 0x01),
        ("zero", |b, at| b[at..].iter_mut().for_each(|x| *x = 0)),
        ("cut", |b, at| b.truncate(at + 10)),
    ];
    let t = Topic::DeadLetter;
    for (name, damage) in damages {
        for read_past in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path());
            log.append(t, &batch(t, &["a", "b"])).unwrap();
            log.append(t, &batch(t, &["c", "d"])).unwrap();
            // A group at the cut (offset 2) read nothing of the last frame; one at 4 read it all.
            let at = if read_past { 4 } else { 2 };
            log.commit("sink", t, &GroupOffsets::from([(0, at)]))
                .unwrap();
            drop(log);
            let path = segment_path(dir.path(), t);
            let mut bytes = fs::read(&path).unwrap();
            let last = frame::encode(&batch(t, &["a", "b"]), 0, 0).unwrap().len();
            damage(&mut bytes, last);
            fs::write(&path, &bytes).unwrap();
            if read_past {
                let err = EmbeddedLog::open(EmbeddedLogConfig::new(dir.path()))
                    .err()
                    .unwrap_or_else(|| panic!("{name}: open must refuse"));
                let (position, base_offset, detail) = corruption(Err(err));
                assert_eq!((position, base_offset), (last as u64, 2), "{name}");
                assert!(
                    detail.starts_with(
                        "acknowledged data is damaged: consumer group 'sink' committed offset 4"
                    ),
                    "{name}: {detail}"
                );
                assert_eq!(fs::read(&path).unwrap(), bytes, "{name}: nothing was cut");
            } else {
                let log = open(dir.path());
                assert_eq!(
                    log.offsets(t, 0).unwrap().end,
                    2,
                    "{name}: cut at the frame"
                );
                let ack = log.append(t, &batch(t, &["e"])).unwrap();
                assert_eq!(ack[0].base_offset, 2, "{name}");
                assert_eq!(ids(&log.read(t, 0, 0, 10).unwrap()), ["a", "b", "e"]);
            }
        }
    }
}

#[test]
fn a_committed_offset_past_the_end_of_the_log_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = Topic::DeadLetter;
    let log = open(dir.path());
    log.append(t, &batch(t, &["a", "b"])).unwrap();
    log.commit("g", t, &GroupOffsets::from([(0, 2)])).unwrap();
    assert_eq!(log.committed("g", t).unwrap(), GroupOffsets::from([(0, 2)]));
    log.commit("g", t, &GroupOffsets::from([(0, 5)])).unwrap();
    let err = log.committed("g", t).unwrap_err();
    assert_eq!(
        err.to_string(),
        "consumer group 'g' committed offset 5 of onex.evt.platform.dead-letter.v1 partition 0, \
         but the log ends at 2: acknowledged events are missing from the log"
    );
}
