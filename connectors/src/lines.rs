//! Newline-delimited input with a bound on memory: a line longer than the keep limit is kept only
//! up to the limit (its full length is still counted), so a 5 GB line cannot exhaust memory.
//! Lines are appended to a caller's buffer, so a chunk of lines costs one allocation, not one each.

use std::io::{self, BufRead};

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

/// Reads lines from a `BufRead`, keeping at most `keep_limit` bytes of each.
pub struct LineReader<R> {
    inner: R,
    number: u64,
    keep_limit: usize,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, keep_limit: usize) -> Self {
        LineReader {
            inner,
            number: 0,
            keep_limit,
        }
    }

    /// Append the next line to `buf`, or return `None` at the end of input. A final line without a
    /// newline is returned; an empty input yields no lines.
    pub fn next_line_into(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<LineSpan>> {
        let start = buf.len();
        let mut total_len: u64 = 0;
        let mut saw_any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let (chunk, consumed, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            let room = self.keep_limit.saturating_sub(buf.len() - start);
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            total_len += chunk.len() as u64;
            self.inner.consume(consumed);
            if done {
                break;
            }
        }
        if buf.len() > start
            && buf[buf.len() - 1] == b'\r'
            && total_len == (buf.len() - start) as u64
        {
            buf.pop();
            total_len -= 1;
        }
        self.number += 1;
        Ok(Some(LineSpan {
            number: self.number,
            start,
            end: buf.len(),
            total_len,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], limit: usize) -> Vec<(u64, Vec<u8>, u64)> {
        let mut r = LineReader::new(io::BufReader::with_capacity(4, input), limit);
        let mut buf = Vec::new();
        let mut out = vec![];
        while let Some(span) = r.next_line_into(&mut buf).unwrap() {
            let l = span.line(&buf);
            out.push((l.number, l.bytes.to_vec(), l.total_len));
        }
        out
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
    }
}
