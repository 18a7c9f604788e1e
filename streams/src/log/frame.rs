//! The on-disk frame: one Arrow IPC record batch behind a fixed header with a CRC.
//!
//! ```text
//! magic u32 | payload_len u32 | crc32 u32 | record_count u32 | base_offset u64 | appended_at_us i64 | payload
//! ```
//! All integers little-endian. The CRC covers `record_count`, `base_offset`, `appended_at_us` and the
//! payload, so a header torn from its payload fails the check too.

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;

use crate::error::{Result, StreamsError};

pub const MAGIC: u32 = u32::from_le_bytes(*b"OMN1");
pub const HEADER_LEN: usize = 32;

/// A frame header as read from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub payload_len: u32,
    pub crc: u32,
    pub record_count: u32,
    pub base_offset: u64,
    pub appended_at_us: i64,
}

impl FrameHeader {
    /// Total bytes of header and payload.
    pub fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + self.payload_len as u64
    }
}

/// What the bytes at some position of a segment hold.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderRead {
    /// A well-formed header.
    Header(FrameHeader),
    /// Fewer than [`HEADER_LEN`] bytes remain, or only zeros: the end of the written data.
    End,
    /// Bytes that are not a frame header.
    Garbage,
}

/// Parse a header from at most `HEADER_LEN` bytes.
pub fn parse_header(bytes: &[u8]) -> HeaderRead {
    if bytes.len() < HEADER_LEN {
        return HeaderRead::End;
    }
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    let magic = u32_at(0);
    if magic != MAGIC {
        if bytes[..HEADER_LEN].iter().all(|b| *b == 0) {
            return HeaderRead::End;
        }
        return HeaderRead::Garbage;
    }
    HeaderRead::Header(FrameHeader {
        payload_len: u32_at(4),
        crc: u32_at(8),
        record_count: u32_at(12),
        base_offset: u64::from_le_bytes(bytes[16..24].try_into().unwrap()),
        appended_at_us: i64::from_le_bytes(bytes[24..32].try_into().unwrap()),
    })
}

fn checksum(record_count: u32, base_offset: u64, appended_at_us: i64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&record_count.to_le_bytes());
    h.update(&base_offset.to_le_bytes());
    h.update(&appended_at_us.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Encode one batch as a complete frame (header and payload): for tests that write frames by hand.
#[cfg(test)]
pub fn encode(batch: &RecordBatch, base_offset: u64, appended_at_us: i64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    encode_into(&mut buf, batch, base_offset, appended_at_us)?;
    Ok(buf)
}

/// Encode one batch as a complete frame (header and payload) ready to append, into `buf`
/// (cleared first): a writer reusing one buffer does not fault in fresh pages for every frame.
pub fn encode_into(
    buf: &mut Vec<u8>,
    batch: &RecordBatch,
    base_offset: u64,
    appended_at_us: i64,
) -> Result<()> {
    buf.clear();
    buf.reserve(HEADER_LEN + batch.get_array_memory_size() + 1024);
    buf.resize(HEADER_LEN, 0);
    {
        let mut writer = StreamWriter::try_new(&mut *buf, &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
    }
    let payload_len = u32::try_from(buf.len() - HEADER_LEN).map_err(|_| {
        StreamsError::Internal(format!(
            "frame payload of {} bytes exceeds 4 GiB",
            buf.len()
        ))
    })?;
    let record_count = u32::try_from(batch.num_rows())
        .map_err(|_| StreamsError::Internal("more than 2^32 rows in one batch".into()))?;
    let crc = checksum(
        record_count,
        base_offset,
        appended_at_us,
        &buf[HEADER_LEN..],
    );
    buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[4..8].copy_from_slice(&payload_len.to_le_bytes());
    buf[8..12].copy_from_slice(&crc.to_le_bytes());
    buf[12..16].copy_from_slice(&record_count.to_le_bytes());
    buf[16..24].copy_from_slice(&base_offset.to_le_bytes());
    buf[24..32].copy_from_slice(&appended_at_us.to_le_bytes());
    Ok(())
}

/// Why a frame's payload does not match its header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("payload is {actual} bytes, header says {expected}")]
    Length { actual: usize, expected: u32 },
    #[error("CRC mismatch: stored {stored:08x}, computed {computed:08x}")]
    Crc { stored: u32, computed: u32 },
}

/// Verify a frame's payload against its header.
pub fn verify(header: &FrameHeader, payload: &[u8]) -> std::result::Result<(), FrameError> {
    if payload.len() != header.payload_len as usize {
        return Err(FrameError::Length {
            actual: payload.len(),
            expected: header.payload_len,
        });
    }
    let crc = checksum(
        header.record_count,
        header.base_offset,
        header.appended_at_us,
        payload,
    );
    if crc != header.crc {
        return Err(FrameError::Crc {
            stored: header.crc,
            computed: crc,
        });
    }
    Ok(())
}

/// Decode a verified payload into its record batch without copying it: the batch's arrays point
/// into `payload` (a frame read from disk is decoded in place, not copied a second time).
pub fn decode(mut payload: Buffer) -> Result<RecordBatch> {
    let mut decoder = StreamDecoder::new();
    let mut batch = None;
    while !payload.is_empty() {
        if let Some(b) = decoder.decode(&mut payload)? {
            if batch.is_some() {
                return Err(StreamsError::Internal(
                    "frame payload holds more than one record batch".into(),
                ));
            }
            batch = Some(b);
        }
    }
    decoder.finish()?;
    batch.ok_or_else(|| StreamsError::Internal("frame payload holds no record batch".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let frame = encode(&batch(), 42, 7).unwrap();
        let HeaderRead::Header(h) = parse_header(&frame[..HEADER_LEN]) else {
            panic!()
        };
        assert_eq!(
            (h.base_offset, h.record_count, h.appended_at_us),
            (42, 3, 7)
        );
        assert_eq!(h.frame_len() as usize, frame.len());
        verify(&h, &frame[HEADER_LEN..]).unwrap();
        assert_eq!(decode(Buffer::from(&frame[HEADER_LEN..])).unwrap(), batch());
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let frame = encode(&batch(), 0, 0).unwrap();
        // Flip one bit in each byte covered by the CRC (everything after magic, len and crc).
        for i in 12..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x10;
            let HeaderRead::Header(h) = parse_header(&bad[..HEADER_LEN]) else {
                panic!()
            };
            assert!(
                matches!(verify(&h, &bad[HEADER_LEN..]), Err(FrameError::Crc { .. })),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn zeros_and_short_reads_are_the_end_and_noise_is_garbage() {
        assert_eq!(parse_header(&[0u8; 10]), HeaderRead::End);
        assert_eq!(parse_header(&[0u8; HEADER_LEN]), HeaderRead::End);
        assert_eq!(parse_header(&[7u8; HEADER_LEN]), HeaderRead::Garbage);
    }
}
