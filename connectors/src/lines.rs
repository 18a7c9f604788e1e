//! Newline-delimited input with a bound on memory: a line longer than the keep limit is kept only
//! up to the limit (its full length is still counted), so a 5 GB line cannot exhaust memory.
//! A stream is read straight into the caller's chunk buffer and split where it lies: a chunk of
//! lines costs one copy of its bytes (the kernel's) and no allocation when the buffer is reused.
//! Input already in memory (a mapped file) is split where it lies, with no copy at all.

use std::io::{self, Read};
/// Where a line sits in a chunk buffer.
#[derive(Debug, Clone, Copy)]
pub struct LineSpan {
    /// 1-based line number.
    pub number: u64,
    /// Byte range of the kept part in the chunk buffer.
    pub start: usize,
    pub end: usize,
    /// Length of the whole line in bytes (without the terminator).
    pub total_len: u64,
}

/// One line of input, without its line terminator.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub number: u64,
    /// The line's bytes, up to the keep limit.
    pub bytes: &'a [u8],
    pub total_len: u64,
}

impl LineSpan {
    pub fn line<'a>(&self, buf: &'a [u8]) -> Line<'a> {
        Line {
            number: self.number,
            bytes: &buf[self.start..self.end],
            total_len: self.total_len,
        }
    }
}

impl Line<'_> {
    pub fn truncated(&self) -> bool {
        self.total_len > self.bytes.len() as u64
    }

    /// Whether the line holds nothing but whitespace.
    pub fn is_blank(&self) -> bool {
        !self.truncated() && self.bytes.iter().all(u8::is_ascii_whitespace)
    }
}

/// Numbers lines and keeps at most `keep_limit` bytes of each: the rules every way of reading
/// input shares.
struct Numbering {
    number: u64,
    keep_limit: usize,
}

impl Numbering {
    fn new(keep_limit: usize) -> Self {
        Numbering {
            number: 0,
            keep_limit: keep_limit.max(1),
        }
    }

    /// Record the line starting at `start` whose bytes at hand end at `end` (whole length
    /// `total_len`): kept up to the limit, without a trailing `\r` when it is kept whole.
    fn push(
        &mut self,
        lines: &mut Vec<LineSpan>,
        data: &[u8],
        start: usize,
        end: usize,
        mut total_len: u64,
    ) {
        let mut end = end.min(start + self.keep_limit);
        if end > start && data[end - 1] == b'\r' && total_len == (end - start) as u64 {
            end -= 1;
            total_len -= 1;
        }
        self.number += 1;
        lines.push(LineSpan {
            number: self.number,
            start,
            end,
            total_len,
        });
    }
}

/// Splits input that is in memory already (a mapped file) into chunks of lines, where they lie.
pub struct SliceLines {
    numbering: Numbering,
    position: usize,
}

impl SliceLines {
    pub fn new(keep_limit: usize) -> Self {
        SliceLines {
            numbering: Numbering::new(keep_limit),
            position: 0,
        }
    }

    /// Replace `lines` with the next lines of `bytes` (always the same input): at most
    /// `max_lines`, and no more once they span `max_bytes`. Empty at the end of input. Spans are
    /// positions in `bytes`.
    pub fn next_chunk(
        &mut self,
        bytes: &[u8],
        lines: &mut Vec<LineSpan>,
        max_lines: usize,
        max_bytes: usize,
    ) {
        lines.clear();
        let chunk_start = self.position;
        while self.position < bytes.len() {
            let start = self.position;
            let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |at| start + at);
            self.numbering
                .push(lines, bytes, start, end, (end - start) as u64);
            self.position = (end + 1).min(bytes.len());
            if lines.len() >= max_lines.max(1) || self.position - chunk_start >= max_bytes {
                return;
            }
        }
    }
}

/// Reads chunks of whole lines from a stream, keeping at most `keep_limit` bytes of each line.
pub struct ChunkReader<R> {
    inner: R,
    numbering: Numbering,
    /// The start of a line read past the end of the previous chunk.
    carry: Vec<u8>,
    eof: bool,
}

/// How much is asked of the input at a time (at least).
const READ_SIZE: usize = 1 << 20;

impl<R: Read> ChunkReader<R> {
    pub fn new(inner: R, keep_limit: usize) -> Self {
        ChunkReader {
            inner,
            numbering: Numbering::new(keep_limit),
            carry: Vec::new(),
            eof: false,
        }
    }

    /// Replace `data` and `lines` with the next whole lines: at most `max_lines` of them, and no
    /// more once `max_bytes` are in `data` (a line is never split between chunks). Both are left
    /// empty at the end of input. A final line without a newline counts; an empty input has no
    /// lines.
    pub fn next_chunk(
        &mut self,
        data: &mut Vec<u8>,
        lines: &mut Vec<LineSpan>,
        max_lines: usize,
        max_bytes: usize,
    ) -> io::Result<()> {
        data.clear();
        lines.clear();
        data.append(&mut self.carry);
        let max_lines = max_lines.max(1);
        // Where the line being assembled starts, and how far it has been searched for a newline.
        let (mut line_start, mut searched) = (0, 0);
        loop {
            while let Some(at) = memchr::memchr(b'\n', &data[searched..]) {
                let end = searched + at;
                self.numbering
                    .push(lines, data, line_start, end, (end - line_start) as u64);
                line_start = end + 1;
                searched = line_start;
                if lines.len() >= max_lines || line_start >= max_bytes {
                    self.carry.extend_from_slice(&data[line_start..]);
                    data.truncate(line_start);
                    return Ok(());
                }
            }
            searched = data.len();
            if data.len() - line_start > self.numbering.keep_limit {
                // What follows the line is left in `carry`, for this chunk or the next.
                self.skip_rest_of_line(data, lines, line_start)?;
                line_start = data.len();
                searched = line_start;
                if lines.len() >= max_lines || line_start >= max_bytes || self.eof {
                    return Ok(());
                }
                data.append(&mut self.carry);
                continue;
            }
            if self.eof || self.fill(data, max_bytes)? == 0 {
                self.eof = true;
                if data.len() > line_start {
                    let len = (data.len() - line_start) as u64;
                    self.numbering
                        .push(lines, data, line_start, data.len(), len);
                }
                return Ok(());
            }
        }
    }

    /// Read more input onto the end of `data`; 0 at the end of input.
    fn fill(&mut self, data: &mut Vec<u8>, max_bytes: usize) -> io::Result<usize> {
        let want = max_bytes.saturating_sub(data.len()).max(READ_SIZE);
        data.reserve(want);
        loop {
            // `read_to_end` on a `Take` reads into the spare capacity without zeroing it first.
            match (&mut self.inner).take(want as u64).read_to_end(data) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// The line at `line_start` is longer than the keep limit: keep its first `keep_limit` bytes,
    /// read and count the rest up to its newline without keeping it, and put what follows in
    /// `carry`.
    fn skip_rest_of_line(
        &mut self,
        data: &mut Vec<u8>,
        lines: &mut Vec<LineSpan>,
        line_start: usize,
    ) -> io::Result<()> {
        let kept_end = line_start + self.numbering.keep_limit;
        let mut total = (data.len() - line_start) as u64;
        let mut rest = data.split_off(kept_end);
        rest.clear();
        loop {
            if self.fill(&mut rest, READ_SIZE)? == 0 {
                self.eof = true;
                break;
            }
            if let Some(at) = memchr::memchr(b'\n', &rest) {
                total += at as u64;
                self.carry.extend_from_slice(&rest[at + 1..]);
                break;
            }
            total += rest.len() as u64;
            rest.clear();
        }
        self.numbering
            .push(lines, data, line_start, kept_end, total);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Reads at most `step` bytes at a time, as pipes and sockets do.
    struct Trickle<'a> {
        input: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Ok(n)
        }
    }

    fn chunks(
        input: &[u8],
        limit: usize,
        step: usize,
        max_lines: usize,
        max_bytes: usize,
    ) -> Vec<Vec<(u64, Vec<u8>, u64)>> {
        let mut r = ChunkReader::new(Trickle { input, step }, limit);
        let (mut data, mut spans) = (Vec::new(), Vec::new());
        let mut out = vec![];
        loop {
            r.next_chunk(&mut data, &mut spans, max_lines, max_bytes)
                .unwrap();
            if spans.is_empty() {
                return out;
            }
            out.push(
                spans
                    .iter()
                    .map(|span| {
                        let l = span.line(&data);
                        (l.number, l.bytes.to_vec(), l.total_len)
                    })
                    .collect(),
            );
        }
    }

    fn lines(input: &[u8], limit: usize) -> Vec<(u64, Vec<u8>, u64)> {
        chunks(input, limit, 4, 1000, 1 << 20).concat()
    }

    #[test]
    fn splits_keeps_and_counts() {
        assert!(lines(b"", 10).is_empty());
        assert_eq!(
            lines(b"a\nbb\r\n\nccc", 10),
            vec![
                (1, b"a".to_vec(), 1),
                (2, b"bb".to_vec(), 2),
                (3, b"".to_vec(), 0),
                (4, b"ccc".to_vec(), 3),
            ]
        );
        assert_eq!(
            lines(b"0123456789abc\nx\n", 4),
            vec![(1, b"0123".to_vec(), 13), (2, b"x".to_vec(), 1)]
        );
        assert_eq!(
            lines(b"0123456789abc\r", 4),
            vec![(1, b"0123".to_vec(), 14)]
        );
    }

    /// What any way of reading must yield: the input split at newlines, each line kept up to the
    /// limit, a `\r` before the newline dropped from lines kept whole, no line after a final
    /// newline.
    fn expected(input: &[u8], limit: usize) -> Vec<(u64, Vec<u8>, u64)> {
        let mut parts: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
        if parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        parts
            .into_iter()
            .enumerate()
            .map(|(i, line)| {
                let line = if line.len() <= limit {
                    line.strip_suffix(b"\r").unwrap_or(line)
                } else {
                    line
                };
                let kept = &line[..line.len().min(limit)];
                (i as u64 + 1, kept.to_vec(), line.len() as u64)
            })
            .collect()
    }

    #[test]
    fn any_input_read_any_way_splits_into_the_same_lines() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..2000 {
            let len = rng.random_range(0..200);
            let input: Vec<u8> = (0..len)
                .map(|_| *b"ab\n\r\n".get(rng.random_range(0..5)).unwrap())
                .collect();
            let limit = rng.random_range(1..12);
            let (step, max_lines, max_bytes) = (
                rng.random_range(1..40),
                rng.random_range(1..6),
                rng.random_range(1..30),
            );
            let got = chunks(&input, limit, step, max_lines, max_bytes);
            assert_eq!(
                got.concat(),
                expected(&input, limit),
                "{input:?} limit {limit}"
            );
            for chunk in &got {
                assert!(chunk.len() <= max_lines);
            }
            // The same input, mapped: split where it lies.
            let mut slice = SliceLines::new(limit);
            let (mut spans, mut mapped) = (Vec::new(), Vec::new());
            loop {
                slice.next_chunk(&input, &mut spans, max_lines, max_bytes);
                if spans.is_empty() {
                    break;
                }
                assert!(spans.len() <= max_lines);
                mapped.extend(spans.iter().map(|span| {
                    let l = span.line(&input);
                    (l.number, l.bytes.to_vec(), l.total_len)
                }));
            }
            assert_eq!(
                mapped,
                expected(&input, limit),
                "mapped: {input:?} limit {limit}"
            );
        }
    }
}
