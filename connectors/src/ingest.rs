//! Ingest: newline-delimited JSON into a topic of the event log. Every line is either accepted or
//! sent to the dead-letter topic with the reason, the source and the line number; nothing stops
//! the rest, nothing is lost.
//!
//! Decoding runs on its own threads while the caller's thread appends (and syncs) the previous
//! batch, so parsing and disk I/O overlap. A regular file is mapped and its lines decoded where
//! they lie; other input is read into chunk buffers that are reused.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use memmap2::Mmap;
use omnistream_streams::{EventLog, Topic, envelope};

use crate::decode::{EnvelopeDefaults, EventDecoder, RejectKind, Rejection};
use crate::error::{ConnectorError, Result};
use crate::lines::{ChunkReader, Line, LineSpan, SliceLines};

/// How ingest batches and bounds its input.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Rows per appended batch (one synced log frame per partition).
    pub batch_rows: usize,
    /// Input bytes per appended batch.
    pub batch_bytes: usize,
    /// Lines longer than this are rejected as `too_large`.
    pub max_event_bytes: usize,
    /// At most this much of a rejected line is kept in the dead-letter topic (the length is always kept).
    pub dead_letter_max_raw_bytes: usize,
    /// Threads decoding JSON in parallel (the reading and appending threads come on top).
    pub decode_threads: usize,
    pub defaults: EnvelopeDefaults,
    /// Lines before this one (1-based) are skipped: resuming an ingest that stopped after them.
    pub from_line: u64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            // 8k rows make frames of about 2.5 MB: the IPC encoder's buffer, which grows by
            // doubling, stays within what the allocator reuses instead of taking fresh pages from
            // the kernel for every frame (ingest ~25 % faster than at 16k in `bench ingest`).
            batch_rows: 8 * 1024,
            batch_bytes: 16 * 1024 * 1024,
            max_event_bytes: 4 * 1024 * 1024,
            dead_letter_max_raw_bytes: 64 * 1024 * 1024,
            decode_threads: std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(1),
            defaults: EnvelopeDefaults::default(),
            from_line: 1,
        }
    }
}

/// A rejected line, for the summary shown to the user.
#[derive(Debug, Clone)]
pub struct RejectedLine {
    pub line_number: u64,
    pub kind: RejectKind,
    pub field: Option<String>,
    pub reason: String,
}

/// What an ingest did. Progress reports carry the same counts so far.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    /// Lines read (blank ones included).
    pub lines: u64,
    /// Lines made durable so far (accepted or dead-lettered): a producer may resume after this line.
    pub acked_lines: u64,
    pub bytes: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Whitespace-only lines, skipped.
    pub blank: u64,
    /// Lines before `from_line`, skipped.
    pub skipped: u64,
    pub rejected_by_kind: BTreeMap<&'static str, u64>,
    /// The first rejections (up to 20), for the summary.
    pub samples: Vec<RejectedLine>,
}

const MAX_SAMPLES: usize = 20;

/// One decoded batch, on its way to the log.
struct Chunk {
    accepted: Option<RecordBatch>,
    dead_letters: Option<RecordBatch>,
    lines: u64,
    last_line: u64,
    bytes: u64,
    blank: u64,
    skipped: u64,
    rejected: Vec<RejectedLine>,
}

/// Where ingest reads its lines from.
pub enum Input<'a> {
    /// A stream (standard input, a pipe, bytes in memory): read into reused chunk buffers.
    Stream(Box<dyn Read + Send + 'a>),
    /// A regular file mapped into memory: lines are decoded where they lie in the page cache,
    /// never copied.
    Mapped(Mmap),
}

impl<'a> Input<'a> {
    pub fn stream(reader: impl Read + Send + 'a) -> Self {
        Input::Stream(Box::new(reader))
    }

    /// How many bytes there are to read, when that is known (a mapped file).
    pub fn size(&self) -> Option<u64> {
        match self {
            Input::Mapped(map) => Some(map.len() as u64),
            Input::Stream(_) => None,
        }
    }

    /// The file at `path`: mapped when it is a regular, non-empty file, streamed otherwise (a
    /// FIFO, a device, an empty file). A mapped file is read as it was when opened: lines
    /// appended later are not read, and it must not be truncated meanwhile (the process would
    /// fault; what was acknowledged before stays in the log).
    pub fn file(path: &Path) -> std::io::Result<Input<'static>> {
        let file = File::open(path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() || metadata.len() == 0 {
            return Ok(Input::Stream(Box::new(file)));
        }
        // SAFETY: the map is only read, and only while `ingest` runs; a file truncated by another
        // process meanwhile faults instead of yielding bad bytes (documented above).
        let map = unsafe { Mmap::map(&file)? };
        // Read ahead: the map is walked once, front to back.
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Input::Mapped(map))
    }
}

/// The bytes a chunk's lines point into.
enum ChunkBytes {
    /// A buffer of its own, handed back to the reader once decoded.
    Owned(Vec<u8>),
    /// The whole mapped input (spans are positions in it).
    Mapped(Arc<Mmap>),
}

impl std::ops::Deref for ChunkBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ChunkBytes::Owned(data) => data,
            ChunkBytes::Mapped(map) => map,
        }
    }
}

/// Lines read but not decoded yet, numbered so decoded chunks can be appended in input order.
struct RawChunk {
    seq: u64,
    data: ChunkBytes,
    lines: Vec<LineSpan>,
}

/// Ingest newline-delimited JSON from `input` into the topic named `topic_name` (full, table or
/// short name). `source_name` is recorded with dead letters (a path, or `-` for standard input).
/// `on_progress` is called after each durable batch.
///
/// One thread reads lines, `options.decode_threads` threads decode chunks of them in parallel, and
/// the caller's thread appends the decoded chunks in input order (so acknowledgements stay a
/// prefix of the input) while the next ones are decoded.
pub fn ingest(
    log: &dyn EventLog,
    topic_name: &str,
    source_name: &str,
    input: Input,
    options: &IngestOptions,
    mut on_progress: impl FnMut(&IngestReport),
) -> Result<IngestReport> {
    // An unknown topic is a mistake of the whole command: refused before anything is read.
    let topic = Topic::lookup(topic_name)?;
    let workers = options.decode_threads.max(1);
    let mut report = IngestReport::default();
    std::thread::scope(|scope| -> Result<()> {
        let (raw_tx, raw_rx) = sync_channel::<RawChunk>(workers);
        // Owned by the workers only: when they all stop, the reader's sends fail and it stops too.
        let raw_rx = Arc::new(Mutex::new(raw_rx));
        // Chunk buffers go back to the reader once decoded: reused memory is not faulted in anew.
        let (spent_tx, spent_rx) = sync_channel::<Vec<u8>>(workers * 2);
        let (done_tx, done_rx) = sync_channel::<(u64, std::io::Result<Chunk>)>(workers * 2);
        let reader_done = done_tx.clone();
        scope.spawn(move || {
            let keep = options
                .dead_letter_max_raw_bytes
                .max(options.max_event_bytes + 1);
            let (rows, bytes) = (options.batch_rows, options.batch_bytes);
            let mut seq = 0;
            match input {
                Input::Stream(stream) => {
                    let mut reader = ChunkReader::new(stream, keep);
                    loop {
                        let mut lines = Vec::new();
                        let mut data = spent_rx.try_recv().unwrap_or_default();
                        if let Err(e) = reader.next_chunk(&mut data, &mut lines, rows, bytes) {
                            let _ = reader_done.send((seq, Err(e)));
                            return;
                        }
                        let data = ChunkBytes::Owned(data);
                        if lines.is_empty() || raw_tx.send(RawChunk { seq, data, lines }).is_err() {
                            return;
                        }
                        seq += 1;
                    }
                }
                Input::Mapped(map) => {
                    let map = Arc::new(map);
                    let mut reader = SliceLines::new(keep);
                    loop {
                        let mut lines = Vec::new();
                        reader.next_chunk(&map, &mut lines, rows, bytes);
                        let data = ChunkBytes::Mapped(map.clone());
                        if lines.is_empty() || raw_tx.send(RawChunk { seq, data, lines }).is_err() {
                            return;
                        }
                        seq += 1;
                    }
                }
            }
        });
        for _ in 0..workers {
            let (raw_rx, done_tx, spent_tx) = (raw_rx.clone(), done_tx.clone(), spent_tx.clone());
            scope.spawn(move || {
                let mut decoder = Decoder {
                    events: EventDecoder::new(topic, options.defaults.clone()),
                    dead: DeadLetterBuilder::new(topic_name, source_name, &options.defaults),
                    options,
                };
                loop {
                    let raw = match raw_rx.lock().unwrap().recv() {
                        Ok(raw) => raw,
                        Err(_) => return,
                    };
                    let seq = raw.seq;
                    let (chunk, spent) = decoder.decode(raw);
                    // A full pool means the reader has buffers enough: this one is dropped.
                    if let ChunkBytes::Owned(buffer) = spent {
                        let _ = spent_tx.try_send(buffer);
                    }
                    if done_tx.send((seq, Ok(chunk))).is_err() {
                        return;
                    }
                }
            });
        }
        drop((done_tx, raw_rx, spent_tx));
        // Append in input order, whatever order the workers finish in.
        let mut pending: BTreeMap<u64, std::io::Result<Chunk>> = BTreeMap::new();
        let mut next = 0u64;
        for (seq, chunk) in done_rx {
            pending.insert(seq, chunk);
            while let Some(chunk) = pending.remove(&next) {
                next += 1;
                let interrupted = |source, report: &IngestReport| ConnectorError::Interrupted {
                    acked_lines: report.acked_lines,
                    accepted: report.accepted,
                    source: Box::new(source),
                };
                let chunk = chunk.map_err(|source| {
                    let input = ConnectorError::Input {
                        source_name: source_name.to_string(),
                        source,
                    };
                    interrupted(input, &report)
                })?;
                // Both appends before the chunk counts as acknowledged: a resume from the line
                // after `acked_lines` repeats at most this chunk's events (deduplicated by
                // event_id when they carry one).
                if let Some(batch) = &chunk.accepted {
                    log.append(topic, batch)
                        .map_err(|e| interrupted(e.into(), &report))?;
                }
                if let Some(batch) = &chunk.dead_letters {
                    log.append(Topic::DeadLetter, batch)
                        .map_err(|e| interrupted(e.into(), &report))?;
                }
                if let Some(batch) = &chunk.accepted {
                    report.accepted += batch.num_rows() as u64;
                }
                report.lines += chunk.lines;
                report.acked_lines = chunk.last_line;
                report.bytes += chunk.bytes;
                report.blank += chunk.blank;
                report.skipped += chunk.skipped;
                report.rejected += chunk.rejected.len() as u64;
                for r in chunk.rejected {
                    *report.rejected_by_kind.entry(r.kind.as_str()).or_default() += 1;
                    if report.samples.len() < MAX_SAMPLES {
                        report.samples.push(r);
                    }
                }
                on_progress(&report);
            }
        }
        Ok(())
    })?;
    Ok(report)
}

struct Decoder<'a> {
    events: EventDecoder,
    dead: DeadLetterBuilder,
    options: &'a IngestOptions,
}

impl Decoder<'_> {
    /// Decode a chunk; its buffer is handed back for reuse.
    fn decode(&mut self, raw: RawChunk) -> (Chunk, ChunkBytes) {
        let mut chunk = Chunk {
            accepted: None,
            dead_letters: None,
            lines: raw.lines.len() as u64,
            last_line: raw.lines.last().map(|l| l.number).unwrap_or(0),
            bytes: 0,
            blank: 0,
            skipped: 0,
            rejected: vec![],
        };
        for span in &raw.lines {
            let line = span.line(&raw.data);
            chunk.bytes += line.total_len + 1;
            if line.number < self.options.from_line {
                chunk.skipped += 1;
                continue;
            }
            if line.is_blank() {
                chunk.blank += 1;
                continue;
            }
            let outcome = if line.total_len > self.options.max_event_bytes as u64 {
                Err(Rejection::new(
                    RejectKind::TooLarge,
                    None,
                    format!(
                        "line is {} bytes; events are limited to {} bytes (ingest.max_event_bytes)",
                        line.total_len, self.options.max_event_bytes
                    ),
                ))
            } else {
                self.events.push_line(line.bytes)
            };
            if let Err(rejection) = outcome {
                chunk.rejected.push(RejectedLine {
                    line_number: line.number,
                    kind: rejection.kind,
                    field: rejection.field.clone(),
                    reason: rejection.reason.clone(),
                });
                self.dead.push(&line, &rejection);
            }
        }
        if !self.events.is_empty() {
            chunk.accepted = Some(self.events.finish());
        }
        if !self.dead.is_empty() {
            chunk.dead_letters = Some(self.dead.finish());
        }
        (chunk, raw.data)
    }
}

/// Builds dead-letter records. Their event ids derive from the source, line number and content,
/// so ingesting the same input again (a retry after a crash) does not duplicate them in the lake.
pub struct DeadLetterBuilder {
    original_topic: String,
    source_name: String,
    source: String,
    rows: Vec<DeadLetterRow>,
}

struct DeadLetterRow {
    event_id: String,
    line_number: u64,
    kind: RejectKind,
    field: Option<String>,
    reason: String,
    raw: Vec<u8>,
    raw_bytes: u64,
    truncated: bool,
}

impl DeadLetterBuilder {
    pub fn new(original_topic: &str, source_name: &str, defaults: &EnvelopeDefaults) -> Self {
        DeadLetterBuilder {
            original_topic: original_topic.to_string(),
            source_name: source_name.to_string(),
            source: defaults.source.clone(),
            rows: vec![],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn push(&mut self, line: &Line, rejection: &Rejection) {
        let mut key = Vec::with_capacity(line.bytes.len() + 64);
        key.extend_from_slice(self.original_topic.as_bytes());
        key.push(0);
        key.extend_from_slice(self.source_name.as_bytes());
        key.push(0);
        key.extend_from_slice(&line.number.to_le_bytes());
        key.extend_from_slice(&line.total_len.to_le_bytes());
        key.extend_from_slice(line.bytes);
        let event_id = uuid::Uuid::new_v5(&DEAD_LETTER_NAMESPACE, &key)
            .hyphenated()
            .to_string();
        self.rows.push(DeadLetterRow {
            event_id,
            line_number: line.number,
            kind: rejection.kind,
            field: rejection.field.clone(),
            reason: rejection.reason.clone(),
            raw: line.bytes.to_vec(),
            raw_bytes: line.total_len,
            truncated: line.truncated(),
        });
    }

    pub fn finish(&mut self) -> RecordBatch {
        let rows = std::mem::take(&mut self.rows);
        let now = chrono::Utc::now().timestamp_micros();
        let spec = Topic::DeadLetter.spec();
        let strings = |f: &dyn Fn(&DeadLetterRow) -> Option<String>| -> ArrayRef {
            let mut b = StringBuilder::new();
            rows.iter().for_each(|r| b.append_option(f(r)));
            Arc::new(b.finish())
        };
        let columns: Vec<ArrayRef> = spec
            .fields
            .iter()
            .map(|field| match field.name {
                envelope::EVENT_ID | envelope::CORRELATION_ID => {
                    strings(&|r| Some(r.event_id.clone()))
                }
                envelope::CAUSATION_ID | envelope::METADATA => strings(&|_| None),
                envelope::EVENT_TYPE => strings(&|_| Some(spec.event_type.to_string())),
                envelope::SOURCE => strings(&|_| Some(self.source.clone())),
                envelope::EMITTED_AT => {
                    let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                    rows.iter().for_each(|_| b.append_value(now));
                    Arc::new(b.finish())
                }
                envelope::SCHEMA_VERSION | "line_number" | "raw_bytes" => {
                    let mut b = Int64Builder::new();
                    rows.iter().for_each(|r| {
                        b.append_value(match field.name {
                            "line_number" => r.line_number as i64,
                            "raw_bytes" => r.raw_bytes as i64,
                            _ => spec.version,
                        })
                    });
                    Arc::new(b.finish())
                }
                "original_topic" => strings(&|_| Some(self.original_topic.clone())),
                "error_kind" => strings(&|r| Some(r.kind.as_str().to_string())),
                "reason" => strings(&|r| Some(r.reason.clone())),
                "field" => strings(&|r| r.field.clone()),
                "source_file" => strings(&|_| Some(self.source_name.clone())),
                "raw" => {
                    let mut b = BinaryBuilder::new();
                    rows.iter().for_each(|r| b.append_value(&r.raw));
                    Arc::new(b.finish())
                }
                "raw_truncated" => {
                    let mut b = BooleanBuilder::new();
                    rows.iter().for_each(|r| b.append_value(r.truncated));
                    Arc::new(b.finish())
                }
                other => unreachable!("dead-letter column '{other}' has no builder"),
            })
            .collect();
        RecordBatch::try_new(spec.schema.clone(), columns)
            .expect("dead-letter columns match the schema")
    }
}

/// Namespace of dead-letter event ids (UUIDv5).
const DEAD_LETTER_NAMESPACE: uuid::Uuid = uuid::uuid!("6f6d6e69-7374-7265-616d-646561646c74");
