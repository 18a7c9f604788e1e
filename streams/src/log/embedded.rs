//! The embedded event log: per topic and partition, a directory of segment files
//! (`<base offset>.log`) holding CRC-checked frames of Arrow IPC record batches.
//!
//! Several processes may use one log directory at once: appends take an exclusive file lock on the
//! partition, so writers from different processes serialise; readers take no lock and see a frame
//! once it is complete. The writer that takes the lock first after a crash truncates a torn tail
//! (a frame cut short by the crash, which was never acknowledged because acknowledgement follows
//! the sync). A complete frame whose CRC does not match is reported as corruption, never served.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, RecordBatch, StringArray, UInt32Array};
use arrow::buffer::Buffer;
use arrow::compute::take_record_batch;
use serde::{Deserialize, Serialize};

use super::frame::{self, FrameHeader, HEADER_LEN, HeaderRead};
use super::groups::{GroupStore, sync_dir};
use super::{AppendAck, EventLog, GroupOffsets, LogBatch, PartitionOffsets};
use crate::error::{Result, StreamsError};
use crate::io::{IoContext, IoError};
use crate::registry::Topic;

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedLogConfig {
    /// Root directory of the log.
    pub dir: PathBuf,
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// Partitions of a topic created from now on (existing topics keep theirs).
    pub default_partitions: u32,
    /// Per-topic partition counts for topics created from now on.
    pub partitions: HashMap<Topic, u32>,
    /// Closed segments whose newest record is older than this are deleted. `None` keeps everything.
    pub retention: Option<Duration>,
    /// Sync appended frames to disk before acknowledging them. Turning this off trades durability
    /// on power loss (not on process crash) for speed.
    pub fsync: bool,
}

impl EmbeddedLogConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EmbeddedLogConfig {
            dir: dir.into(),
            segment_bytes: 128 * 1024 * 1024,
            default_partitions: 1,
            partitions: HashMap::new(),
            retention: None,
            fsync: true,
        }
    }
}

/// On-disk description of a topic, written once when the topic is first used.
#[derive(Debug, Serialize, Deserialize)]
struct TopicMeta {
    topic: String,
    partitions: u32,
    /// Column names and types; a change without a version bump is refused.
    schema: Vec<String>,
}

fn schema_signature(topic: Topic) -> Vec<String> {
    topic
        .schema()
        .fields()
        .iter()
        .map(|f| {
            format!(
                "{}: {}{}",
                f.name(),
                f.data_type(),
                if f.is_nullable() { "" } else { " not null" }
            )
        })
        .collect()
}

/// The embedded, file-backed [`EventLog`].
pub struct EmbeddedLog {
    config: EmbeddedLogConfig,
    groups: GroupStore,
    topics: Mutex<HashMap<Topic, Arc<TopicState>>>,
}

struct TopicState {
    partitions: Vec<Mutex<PartitionState>>,
}

/// What this process knows about one partition; refreshed from disk when needed.
struct PartitionState {
    topic: Topic,
    partition: u32,
    dir: PathBuf,
    segments: Vec<Segment>,
    /// The offset the next record gets.
    next_offset: u64,
    /// Open lock file; holding its exclusive lock makes this process the partition's writer.
    lock_file: Option<File>,
    /// The frame being appended, reused from one append to the next.
    frame_buffer: Vec<u8>,
}

struct Segment {
    base_offset: u64,
    path: PathBuf,
    file: Arc<File>,
    frames: Vec<FrameEntry>,
    /// Bytes up to here hold complete frames.
    scanned_to: u64,
    /// What follows `scanned_to`, when the scan stopped before the end of the file.
    tail: Tail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Nothing after the last complete frame.
    Clean,
    /// An incomplete frame, zeros, or noise with no valid frame after it: a torn write.
    Torn,
    /// Noise followed by more valid frames: corruption in the middle of the segment.
    Corrupt,
}

#[derive(Debug, Clone, Copy)]
struct FrameEntry {
    base_offset: u64,
    record_count: u32,
    position: u64,
    payload_len: u32,
    appended_at_us: i64,
}

impl FrameEntry {
    fn end_offset(&self) -> u64 {
        self.base_offset + self.record_count as u64
    }
}

fn segment_name(base_offset: u64) -> String {
    format!("{base_offset:020}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
        stem.parse().ok()
    } else {
        None
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl EmbeddedLog {
    /// Open (or create) the log under `config.dir`. Every partition whose writer lock is free has
    /// its torn tail, if any, truncated now.
    pub fn open(config: EmbeddedLogConfig) -> Result<Self> {
        fs::create_dir_all(&config.dir)
            .io_context(|| format!("creating log directory {}", config.dir.display()))?;
        let log = EmbeddedLog {
            groups: GroupStore::new(&config.dir),
            config,
            topics: Mutex::new(HashMap::new()),
        };
        for topic in Topic::ALL {
            if log.topic_dir(topic).join("topic.json").exists() {
                let state = log.topic(topic)?;
                for partition in &state.partitions {
                    let mut p = partition.lock().unwrap();
                    p.refresh()?;
                    if p.try_lock_writer()? {
                        let result = p.recover_tail(&log.groups);
                        p.unlock_writer();
                        result?;
                    }
                }
            }
        }
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    fn topic_dir(&self, topic: Topic) -> PathBuf {
        self.config.dir.join(topic.name())
    }

    fn topic(&self, topic: Topic) -> Result<Arc<TopicState>> {
        let mut topics = self.topics.lock().unwrap();
        if let Some(state) = topics.get(&topic) {
            return Ok(state.clone());
        }
        let meta = self.load_or_create_meta(topic)?;
        let mut partitions = Vec::with_capacity(meta.partitions as usize);
        for p in 0..meta.partitions {
            let dir = self.topic_dir(topic).join(p.to_string());
            fs::create_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
            let mut state = PartitionState {
                topic,
                partition: p,
                dir,
                segments: vec![],
                next_offset: 0,
                lock_file: None,
                frame_buffer: Vec::new(),
            };
            state.refresh()?;
            partitions.push(Mutex::new(state));
        }
        let state = Arc::new(TopicState { partitions });
        topics.insert(topic, state.clone());
        Ok(state)
    }

    fn load_or_create_meta(&self, topic: Topic) -> Result<TopicMeta> {
        let dir = self.topic_dir(topic);
        let path = dir.join("topic.json");
        let read =
            |path: &Path| -> Result<Option<TopicMeta>> {
                match fs::read(path) {
                    Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                        StreamsError::Metadata {
                            topic: topic.name().into(),
                            detail: format!("unreadable {}: {e}", path.display()),
                        }
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(IoError::new(format!("reading {}", path.display()), e).into()),
                }
            };
        let meta = match read(&path)? {
            Some(meta) => meta,
            None => {
                let partitions = self
                    .config
                    .partitions
                    .get(&topic)
                    .copied()
                    .unwrap_or(self.config.default_partitions)
                    .max(1);
                let meta = TopicMeta {
                    topic: topic.name().into(),
                    partitions,
                    schema: schema_signature(topic),
                };
                fs::create_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
                // Publish with a hard link so that two processes creating the topic at once agree
                // on one description: the loser reads the winner's.
                let tmp = dir.join(format!(".topic.json.{}.tmp", uuid::Uuid::now_v7()));
                let mut f =
                    File::create(&tmp).io_context(|| format!("creating {}", tmp.display()))?;
                f.write_all(&serde_json::to_vec_pretty(&meta).unwrap())
                    .and_then(|_| f.sync_all())
                    .io_context(|| format!("writing {}", tmp.display()))?;
                let linked = fs::hard_link(&tmp, &path);
                let _ = fs::remove_file(&tmp);
                match linked {
                    Ok(()) => {
                        sync_dir(&dir)?;
                        meta
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path)?
                        .ok_or_else(|| StreamsError::Internal("topic.json vanished".into()))?,
                    Err(e) => {
                        return Err(
                            IoError::new(format!("publishing {}", path.display()), e).into()
                        );
                    }
                }
            }
        };
        if meta.schema != schema_signature(topic) {
            return Err(StreamsError::Metadata {
                topic: topic.name().into(),
                detail: format!(
                    "the log at {} was written with another schema for this topic version; \
                     a schema change needs a new topic version",
                    dir.display()
                ),
            });
        }
        Ok(meta)
    }

    /// Row indices of `batch` per partition, by the topic's partition key.
    fn split_by_partition(
        topic: Topic,
        batch: &RecordBatch,
        partitions: u32,
    ) -> Vec<(u32, RecordBatch)> {
        if partitions == 1 {
            return vec![(0, batch.clone())];
        }
        let keys = batch
            .column_by_name(topic.spec().partition_key)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let mut rows: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for i in 0..batch.num_rows() {
            let p = match keys {
                Some(keys) if keys.is_valid(i) => partition_for(keys.value(i), partitions),
                _ => 0,
            };
            rows.entry(p).or_default().push(i as u32);
        }
        rows.into_iter()
            .map(|(p, idx)| {
                let batch =
                    take_record_batch(batch, &UInt32Array::from(idx)).expect("indices in range");
                (p, batch)
            })
            .collect()
    }

    fn check_schema(topic: Topic, batch: &RecordBatch) -> Result<()> {
        let expected = topic.schema();
        let got = batch.schema();
        if expected.fields() != got.fields() {
            let detail = expected
                .fields()
                .iter()
                .zip(got.fields().iter())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("expected {a:?}, got {b:?}"))
                .unwrap_or_else(|| {
                    format!(
                        "expected {} columns, got {}",
                        expected.fields().len(),
                        got.fields().len()
                    )
                });
            return Err(StreamsError::SchemaMismatch {
                topic: topic.name().into(),
                detail,
            });
        }
        Ok(())
    }

    fn partition(&self, topic: Topic, partition: u32) -> Result<(Arc<TopicState>, usize)> {
        let state = self.topic(topic)?;
        if partition as usize >= state.partitions.len() {
            return Err(StreamsError::UnknownPartition {
                topic: topic.name().into(),
                partition,
                partitions: state.partitions.len() as u32,
            });
        }
        Ok((state, partition as usize))
    }
}

/// The partition of a key: stable across processes and versions (CRC32 of the key bytes).
pub fn partition_for(key: &str, partitions: u32) -> u32 {
    crc32fast::hash(key.as_bytes()) % partitions
}

impl EventLog for EmbeddedLog {
    fn partitions(&self, topic: Topic) -> Result<u32> {
        Ok(self.topic(topic)?.partitions.len() as u32)
    }

    fn append(&self, topic: Topic, batch: &RecordBatch) -> Result<Vec<AppendAck>> {
        Self::check_schema(topic, batch)?;
        if batch.num_rows() == 0 {
            return Ok(vec![]);
        }
        let state = self.topic(topic)?;
        let mut acks = Vec::new();
        for (p, part) in Self::split_by_partition(topic, batch, state.partitions.len() as u32) {
            let mut partition = state.partitions[p as usize].lock().unwrap();
            let base_offset = partition.append(&part, &self.config, &self.groups)?;
            acks.push(AppendAck {
                partition: p,
                base_offset,
                records: part.num_rows() as u64,
            });
        }
        Ok(acks)
    }

    fn read(
        &self,
        topic: Topic,
        partition: u32,
        from: u64,
        max_records: usize,
    ) -> Result<Vec<LogBatch>> {
        let (state, p) = self.partition(topic, partition)?;
        // Pick the frames under the lock, read them without it so appends are not held up.
        let picked = {
            let mut ps = state.partitions[p].lock().unwrap();
            if from >= ps.next_offset {
                ps.refresh()?;
            }
            ps.pick_frames(from, max_records)?
        };
        let mut out = Vec::with_capacity(picked.len());
        for (segment_path, file, entry) in picked {
            let corrupt = |detail: String| StreamsError::Corrupt {
                path: segment_path.clone(),
                position: entry.position,
                base_offset: entry.base_offset,
                detail,
            };
            let buf = map_frame(&file, &entry)
                .io_context(|| format!("reading {}", segment_path.display()))?
                .ok_or_else(|| corrupt("the segment was cut short under the reader".into()))?;
            let header = match frame::parse_header(&buf[..HEADER_LEN]) {
                HeaderRead::Header(h) => h,
                _ => return Err(corrupt("frame header no longer readable".into())),
            };
            if header.base_offset != entry.base_offset {
                return Err(corrupt(format!(
                    "header names offset {}",
                    header.base_offset
                )));
            }
            frame::verify(&header, &buf[HEADER_LEN..]).map_err(|e| corrupt(e.to_string()))?;
            let mut batch = frame::decode(buf.slice(HEADER_LEN))?;
            let mut base_offset = entry.base_offset;
            if from > base_offset {
                let skip = (from - base_offset) as usize;
                batch = batch.slice(skip, batch.num_rows() - skip);
                base_offset = from;
            }
            out.push(LogBatch {
                topic,
                partition,
                base_offset,
                appended_at_us: entry.appended_at_us,
                batch,
            });
        }
        Ok(out)
    }

    fn offsets(&self, topic: Topic, partition: u32) -> Result<PartitionOffsets> {
        let (state, p) = self.partition(topic, partition)?;
        let mut ps = state.partitions[p].lock().unwrap();
        ps.refresh()?;
        Ok(PartitionOffsets {
            start: ps.start_offset(),
            end: ps.next_offset,
        })
    }

    fn committed(&self, group: &str, topic: Topic) -> Result<GroupOffsets> {
        let committed = self.groups.committed(group, topic)?;
        let state = self.topic(topic)?;
        for (&partition, &at) in &committed {
            let Some(ps) = state.partitions.get(partition as usize) else {
                continue;
            };
            // What this process knows first; the directory is listed only when the committed
            // offset looks past it (another process may have appended since).
            let mut ps = ps.lock().unwrap();
            if at > ps.next_offset {
                ps.refresh()?;
                crate::log::check_position(group, topic, partition, at, ps.next_offset)?;
            }
        }
        Ok(committed)
    }

    fn commit(&self, group: &str, topic: Topic, offsets: &GroupOffsets) -> Result<()> {
        self.groups.commit(group, topic, offsets)
    }

    fn groups(&self) -> Result<Vec<String>> {
        self.groups.groups()
    }
}

/// Map one frame of a segment, or `None` when the file no longer holds it. The frame's pages are
/// the page cache's own: nothing is copied and no fresh memory is faulted in and zeroed (reading
/// frames into new buffers was a quarter of the sink's CPU, most of it the kernel zeroing pages).
/// The mapping lives as long as the batch decoded from it.
fn map_frame(file: &File, entry: &FrameEntry) -> std::io::Result<Option<Buffer>> {
    let len = HEADER_LEN + entry.payload_len as usize;
    if file.metadata()?.len() < entry.position + len as u64 {
        return Ok(None);
    }
    // SAFETY: segments are append-only: the bytes of an indexed frame never change. The log cuts
    // a file shorter only in `recover_tail`, and only past the last frame whose CRC passes, so a
    // frame served (its CRC checked by the caller) is never cut while mapped. A mapping touched
    // after a cut faults (SIGBUS): the length check above turns a cut made before this read into
    // an error; what remains is a writer recovering from a power loss that cuts the bad last
    // frame between this check and the caller's CRC pass, or something outside omnistream
    // truncating a segment, as with any mapped file.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(entry.position)
            .len(len)
            .populate()
            .map(file)?
    };
    let ptr = std::ptr::NonNull::new(map.as_ptr().cast_mut())
        .expect("a successful mapping is never at address zero");
    // SAFETY: `ptr` is valid for `len` bytes for as long as `map`, which the buffer owns, lives.
    Ok(Some(unsafe {
        Buffer::from_custom_allocation(ptr, len, Arc::new(map))
    }))
}

impl PartitionState {
    fn start_offset(&self) -> u64 {
        self.segments
            .first()
            .map(|s| s.base_offset)
            .unwrap_or(self.next_offset)
    }

    /// Bring the in-memory view up to date with the files: new segments, new frames, removed segments.
    fn refresh(&mut self) -> Result<()> {
        let mut on_disk = Vec::new();
        let entries =
            fs::read_dir(&self.dir).io_context(|| format!("listing {}", self.dir.display()))?;
        for entry in entries {
            let entry = entry.io_context(|| format!("listing {}", self.dir.display()))?;
            if let Some(base) = entry.file_name().to_str().and_then(parse_segment_name) {
                on_disk.push(base);
            }
        }
        on_disk.sort_unstable();
        // Segments removed by retention (possibly by another process).
        self.segments
            .retain(|s| on_disk.binary_search(&s.base_offset).is_ok());
        let known_last = self.segments.last().map(|s| s.base_offset);
        for base in on_disk {
            if known_last.is_some_and(|last| base <= last) {
                continue;
            }
            let path = self.dir.join(segment_name(base));
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(IoError::new(format!("opening {}", path.display()), e).into()),
            };
            self.segments.push(Segment {
                base_offset: base,
                path,
                file: Arc::new(file),
                frames: vec![],
                scanned_to: 0,
                tail: Tail::Clean,
            });
        }
        let count = self.segments.len();
        for (i, segment) in self.segments.iter_mut().enumerate() {
            segment.scan()?;
            if i + 1 < count && segment.tail != Tail::Clean {
                return Err(StreamsError::Corrupt {
                    path: segment.path.clone(),
                    position: segment.scanned_to,
                    base_offset: segment
                        .frames
                        .last()
                        .map(|f| f.end_offset())
                        .unwrap_or(segment.base_offset),
                    detail: "a closed segment ends with bytes that are not a complete frame".into(),
                });
            }
        }
        self.next_offset = match self.segments.last() {
            Some(s) => s
                .frames
                .last()
                .map(|f| f.end_offset())
                .unwrap_or(s.base_offset),
            None => self.next_offset,
        };
        Ok(())
    }

    fn pick_frames(
        &self,
        from: u64,
        max_records: usize,
    ) -> Result<Vec<(PathBuf, Arc<File>, FrameEntry)>> {
        let mut out = Vec::new();
        if from >= self.next_offset {
            return Ok(out);
        }
        let from = from.max(self.start_offset());
        let mut records = 0usize;
        let first_segment = self
            .segments
            .partition_point(|s| s.base_offset <= from)
            .saturating_sub(1);
        for segment in &self.segments[first_segment..] {
            if segment.tail == Tail::Corrupt {
                return Err(StreamsError::Corrupt {
                    path: segment.path.clone(),
                    position: segment.scanned_to,
                    base_offset: segment
                        .frames
                        .last()
                        .map(|f| f.end_offset())
                        .unwrap_or(segment.base_offset),
                    detail: "unreadable bytes followed by more frames".into(),
                });
            }
            let start = segment.frames.partition_point(|f| f.end_offset() <= from);
            for entry in &segment.frames[start..] {
                out.push((segment.path.clone(), segment.file.clone(), *entry));
                records += (entry.end_offset() - from.max(entry.base_offset)) as usize;
                if records >= max_records {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    fn try_lock_writer(&mut self) -> Result<bool> {
        let path = self.lock_path();
        Ok(crate::io::try_lock(self.lock_file()?, &path)?)
    }

    fn lock_writer(&mut self) -> Result<()> {
        let path = self.lock_path();
        Ok(self
            .lock_file()?
            .lock()
            .io_context(|| format!("locking {}", path.display()))?)
    }

    fn unlock_writer(&mut self) {
        if let Some(f) = &self.lock_file {
            let _ = f.unlock();
        }
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join("writer.lock")
    }

    fn lock_file(&mut self) -> Result<&File> {
        if self.lock_file.is_none() {
            self.lock_file = Some(crate::io::open_lock_file(&self.lock_path())?);
        }
        Ok(self.lock_file.as_ref().unwrap())
    }

    /// With the writer lock held: cut a torn tail off the last segment, so appends continue after
    /// the last complete frame. A tail that a consumer group has committed past was acknowledged
    /// and read, so it cannot be a torn write: that is corruption, reported and never cut, so its
    /// offsets are never given to new events that the group would then skip.
    fn recover_tail(&mut self, groups: &GroupStore) -> Result<()> {
        let Some(last) = self.segments.last_mut() else {
            return Ok(());
        };
        // The last complete frame may itself be torn (its pages never reached the disk before a
        // power loss): check its CRC too.
        if let Some(entry) = last.frames.last().copied() {
            let mut buf = vec![0u8; HEADER_LEN + entry.payload_len as usize];
            last.file
                .read_exact_at(&mut buf, entry.position)
                .io_context(|| format!("reading {}", last.path.display()))?;
            let valid = match frame::parse_header(&buf[..HEADER_LEN]) {
                HeaderRead::Header(h) => frame::verify(&h, &buf[HEADER_LEN..]).is_ok(),
                _ => false,
            };
            if !valid && last.scanned_to == last.file_len()? {
                last.frames.pop();
                last.scanned_to = entry.position;
                last.tail = Tail::Torn;
            }
        }
        match last.tail {
            Tail::Clean => Ok(()),
            Tail::Corrupt => Err(StreamsError::Corrupt {
                path: last.path.clone(),
                position: last.scanned_to,
                base_offset: last
                    .frames
                    .last()
                    .map(|f| f.end_offset())
                    .unwrap_or(last.base_offset),
                detail: "unreadable bytes followed by more frames; refusing to append".into(),
            }),
            Tail::Torn => {
                let resume_at = last
                    .frames
                    .last()
                    .map(|f| f.end_offset())
                    .unwrap_or(last.base_offset);
                if let Some((group, committed)) =
                    groups.committed_past(self.topic, self.partition, resume_at)?
                {
                    return Err(StreamsError::Corrupt {
                        path: last.path.clone(),
                        position: last.scanned_to,
                        base_offset: resume_at,
                        detail: format!(
                            "acknowledged data is damaged: consumer group '{group}' committed offset \
                             {committed}, past this unreadable frame, so it is not a torn write; \
                             refusing to cut it (restore the segment from a backup)"
                        ),
                    });
                }
                let len = last.file_len()?;
                tracing::warn!(
                    segment = %last.path.display(),
                    at = last.scanned_to,
                    bytes = len - last.scanned_to,
                    "truncating a torn tail (an unacknowledged write cut short by a crash)"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(&last.path)
                    .io_context(|| format!("opening {}", last.path.display()))?;
                file.set_len(last.scanned_to)
                    .and_then(|_| file.sync_all())
                    .io_context(|| format!("truncating {}", last.path.display()))?;
                last.tail = Tail::Clean;
                self.next_offset = last
                    .frames
                    .last()
                    .map(|f| f.end_offset())
                    .unwrap_or(last.base_offset);
                Ok(())
            }
        }
    }

    fn append(
        &mut self,
        batch: &RecordBatch,
        config: &EmbeddedLogConfig,
        groups: &GroupStore,
    ) -> Result<u64> {
        self.lock_writer()?;
        let result = self.append_locked(batch, config, groups);
        self.unlock_writer();
        result
    }

    fn append_locked(
        &mut self,
        batch: &RecordBatch,
        config: &EmbeddedLogConfig,
        groups: &GroupStore,
    ) -> Result<u64> {
        self.refresh()?;
        self.recover_tail(groups)?;
        let roll = match self.segments.last() {
            None => true,
            Some(s) => s.scanned_to >= config.segment_bytes,
        };
        if roll {
            self.roll(config)?;
        }
        let base_offset = self.next_offset;
        let appended_at_us = now_us();
        let mut bytes = std::mem::take(&mut self.frame_buffer);
        let encoded = frame::encode_into(&mut bytes, batch, base_offset, appended_at_us);
        let result = encoded
            .and_then(|()| self.write_frame(&bytes, batch, base_offset, appended_at_us, config));
        // An exceptional batch's buffer is not kept for the rest of the process.
        if bytes.capacity() <= 32 << 20 {
            self.frame_buffer = bytes;
        }
        result
    }

    fn write_frame(
        &mut self,
        bytes: &[u8],
        batch: &RecordBatch,
        base_offset: u64,
        appended_at_us: i64,
        config: &EmbeddedLogConfig,
    ) -> Result<u64> {
        let segment = self.segments.last_mut().expect("a segment after roll");
        let mut file = OpenOptions::new()
            .append(true)
            .open(&segment.path)
            .io_context(|| format!("opening {}", segment.path.display()))?;
        file.write_all(bytes)
            .io_context(|| format!("appending to {}", segment.path.display()))?;
        if config.fsync {
            file.sync_data()
                .io_context(|| format!("syncing {}", segment.path.display()))?;
        }
        segment.frames.push(FrameEntry {
            base_offset,
            record_count: batch.num_rows() as u32,
            position: segment.scanned_to,
            payload_len: (bytes.len() - HEADER_LEN) as u32,
            appended_at_us,
        });
        segment.scanned_to += bytes.len() as u64;
        self.next_offset = base_offset + batch.num_rows() as u64;
        Ok(base_offset)
    }

    /// Start a new segment at the current end, and apply retention to the closed ones.
    fn roll(&mut self, config: &EmbeddedLogConfig) -> Result<()> {
        let base = self.next_offset;
        let path = self.dir.join(segment_name(base));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)
            .io_context(|| format!("creating {}", path.display()))?;
        sync_dir(&self.dir)?;
        self.segments.push(Segment {
            base_offset: base,
            path,
            file: Arc::new(file),
            frames: vec![],
            scanned_to: 0,
            tail: Tail::Clean,
        });
        if let Some(retention) = config.retention {
            let cutoff = now_us() - retention.as_micros() as i64;
            let closed = self.segments.len() - 1;
            let expired = self.segments[..closed]
                .iter()
                .take_while(|s| s.frames.last().is_none_or(|f| f.appended_at_us <= cutoff))
                .count();
            for segment in self.segments.drain(..expired) {
                tracing::info!(segment = %segment.path.display(), "retention: deleting segment");
                fs::remove_file(&segment.path)
                    .io_context(|| format!("deleting {}", segment.path.display()))?;
            }
            if expired > 0 {
                sync_dir(&self.dir)?;
            }
        }
        tracing::debug!(topic = %self.topic, partition = %self.dir.display(), base, "rolled segment");
        Ok(())
    }
}

impl Segment {
    fn file_len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .io_context(|| format!("stat {}", self.path.display()))?
            .len())
    }

    /// Index the complete frames after `scanned_to`. Reads headers only; payload CRCs are checked
    /// when a frame is read (and for the last frame, by the writer's tail recovery).
    fn scan(&mut self) -> Result<()> {
        let len = self.file_len()?;
        let mut expected = self
            .frames
            .last()
            .map(|f| f.end_offset())
            .unwrap_or(self.base_offset);
        let mut header = [0u8; HEADER_LEN];
        self.tail = Tail::Clean;
        while self.scanned_to < len {
            let available = (len - self.scanned_to).min(HEADER_LEN as u64) as usize;
            self.file
                .read_exact_at(&mut header[..available], self.scanned_to)
                .io_context(|| format!("reading {}", self.path.display()))?;
            let h: FrameHeader = match frame::parse_header(&header[..available]) {
                HeaderRead::Header(h) if h.base_offset == expected => h,
                HeaderRead::End => {
                    self.tail = Tail::Torn;
                    break;
                }
                HeaderRead::Header(_) | HeaderRead::Garbage => {
                    self.tail = if self.valid_frame_after(self.scanned_to + 1, len, expected)? {
                        Tail::Corrupt
                    } else {
                        Tail::Torn
                    };
                    break;
                }
            };
            if self.scanned_to + h.frame_len() > len {
                self.tail = Tail::Torn;
                break;
            }
            self.frames.push(FrameEntry {
                base_offset: h.base_offset,
                record_count: h.record_count,
                position: self.scanned_to,
                payload_len: h.payload_len,
                appended_at_us: h.appended_at_us,
            });
            expected = h.base_offset + h.record_count as u64;
            self.scanned_to += h.frame_len();
        }
        Ok(())
    }

    /// Whether a plausible frame header (magic and an offset at or after `expected`) appears
    /// anywhere in `from..len`: then unreadable bytes before it are corruption, not a torn tail.
    fn valid_frame_after(&self, from: u64, len: u64, expected: u64) -> Result<bool> {
        let mut buf = vec![0u8; (len - from.min(len)) as usize];
        self.file
            .read_exact_at(&mut buf, from)
            .io_context(|| format!("reading {}", self.path.display()))?;
        let magic = frame::MAGIC.to_le_bytes();
        Ok(buf.windows(HEADER_LEN).any(|w| {
            w[..4] == magic
                && matches!(frame::parse_header(w), HeaderRead::Header(h)
                    if h.base_offset >= expected && h.base_offset < expected + (1 << 40))
        }))
    }
}
