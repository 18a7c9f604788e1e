//! The fast path for the lines producers actually write: one flat object of the topic's own keys
//! whose values are plain strings, numbers, booleans or null.
//!
//! It reads the line once, byte by byte, and borrows every string from it: no copy of the line,
//! no tape, no visitor. Anything it does not take (escapes, nesting, metadata, a payload, unknown
//! or repeated keys, an unusual number, anything malformed) makes it return `None`, and the line
//! takes the general walk, which also explains every rejection. For the lines it does take it
//! yields exactly the values the general walk yields (a test compares the two on every shape of
//! line it knows), so which path a line took never shows in the data.

use omnistream_streams::FieldType;

use super::{Key, Layout, Plain};

/// The values of `text`'s keys by field index (all `Null` on entry), or `None` when the line is
/// not a plain flat object (see the module docs).
pub(super) fn scan<'t>(layout: &Layout, text: &'t str, values: &mut [Plain<'t>]) -> Option<()> {
    let fields = &layout.topic.spec().fields;
    // A field given twice (or by its name and an alias) is the general walk's to settle.
    if fields.len() > 128 {
        return None;
    }
    let mut seen = 0u128;
    let mut at = Cursor { text, i: 0 };
    at.skip_ws();
    at.expect(b'{')?;
    at.skip_ws();
    let mut position = 0;
    loop {
        at.expect(b'"')?;
        // Producers write their keys in the same order line after line: the key the last line
        // had here is checked in place, without scanning for its end first or hashing it.
        let index = match layout.predicted(position) {
            Some((name, Key::Field(index))) if at.skip_key(name) => index,
            _ => {
                let key = at.string_body()?;
                let Some(Key::Field(index)) = layout.lookup(key, Some(position)) else {
                    return None;
                };
                index
            }
        };
        at.skip_ws();
        at.expect(b':')?;
        at.skip_ws();
        position += 1;
        if seen & (1 << index) != 0
            || matches!(
                fields[index].ty,
                FieldType::Json | FieldType::Utf8List | FieldType::Binary
            )
        {
            return None;
        }
        seen |= 1 << index;
        values[index] = match at.peek()? {
            b'"' => {
                at.i += 1;
                Plain::Str(at.string_body()?)
            }
            b't' => at.literal("true").map(|_| Plain::Bool(true))?,
            b'f' => at.literal("false").map(|_| Plain::Bool(false))?,
            b'n' => at.literal("null").map(|_| Plain::Null)?,
            b'-' | b'0'..=b'9' => at.number()?,
            _ => return None,
        };
        at.skip_ws();
        match at.peek()? {
            b',' => {
                at.i += 1;
                at.skip_ws();
            }
            b'}' => {
                at.i += 1;
                break;
            }
            _ => return None,
        }
    }
    at.skip_ws();
    (at.i == text.len()).then_some(())
}

/// The first quote, backslash or control character in `bytes`, eight bytes at a time.
fn string_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte's high bit is set where it is zero (`x - 1` borrows, `!x` keeps 0x80); the lowest
    // flagged byte is always exact, which is all this needs.
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let stops = zero_bytes(x ^ (ONES * u64::from(b'"')))
            | zero_bytes(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGHS);
        if stops != 0 {
            return Some(at + stops.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let rest = chunks.remainder();
    rest.iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| at + i)
}

/// `a == b` for two slices of the same length, eight bytes at a time and inline: keys are a few
/// dozen bytes, for which a call to `memcmp` costs more than the comparison.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    let n = a.len();
    if n < 4 {
        return a == b;
    }
    if n < 8 {
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    // The last eight bytes, overlapping the previous word when `n` is not a multiple of eight.
    word(a, n - 8) == word(b, n - 8)
}

struct Cursor<'t> {
    text: &'t str,
    i: usize,
}

impl<'t> Cursor<'t> {
    fn bytes(&self) -> &'t [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.i).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.i + word.len();
        (self.bytes().get(self.i..end)? == word.as_bytes()).then(|| self.i = end)
    }

    /// Step over a key's contents and closing quote when they are exactly `name`.
    fn skip_key(&mut self, name: &str) -> bool {
        let n = name.len();
        match self.bytes().get(self.i..self.i + n + 1) {
            Some(found) if found[n] == b'"' && same_bytes(&found[..n], name.as_bytes()) => {
                self.i += n + 1;
                true
            }
            _ => false,
        }
    }

    /// A string's contents after its opening quote, up to and past its closing quote. Escapes and
    /// raw control characters (which JSON forbids) are the general walk's.
    fn string_body(&mut self) -> Option<&'t str> {
        let bytes = self.bytes();
        let start = self.i;
        let end = start + string_stop(&bytes[start..])?;
        if bytes[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        // Quotes are ASCII, so both ends are character boundaries of the valid UTF-8 text.
        self.text.get(start..end)
    }

    /// A JSON number: an integer of up to 18 digits as `I64` (no overflow possible), anything with
    /// a fraction or an exponent as a correctly rounded, finite `F64`, as the general walk reads
    /// them. Longer integers and `-0` are left to it.
    fn number(&mut self) -> Option<Plain<'t>> {
        let bytes = self.bytes();
        let start = self.i;
        let negative = bytes[start] == b'-';
        let mut i = start + usize::from(negative);
        let digits_start = i;
        // All digits, fraction included, as one integer: exact while there are at most 19.
        let mut mantissa: u64 = 0;
        while let Some(d @ b'0'..=b'9') = bytes.get(i) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            i += 1;
        }
        let digits = i - digits_start;
        // No digits, a leading zero before more digits (invalid JSON), or too long to be sure.
        if digits == 0 || digits > 18 || (bytes[digits_start] == b'0' && digits > 1) {
            return None;
        }
        let integer = mantissa as i64;
        let (mut float, mut fraction_digits, mut exponent) = (false, 0usize, 0i64);
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            let fraction_start = i;
            while let Some(d @ b'0'..=b'9') = bytes.get(i) {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                i += 1;
            }
            fraction_digits = i - fraction_start;
            if fraction_digits == 0 {
                return None;
            }
            float = true;
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            let exponent_negative = bytes.get(i) == Some(&b'-');
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            let exponent_start = i;
            while let Some(d @ b'0'..=b'9') = bytes.get(i) {
                exponent = exponent
                    .saturating_mul(10)
                    .saturating_add(i64::from(d - b'0'));
                i += 1;
            }
            if i == exponent_start {
                return None;
            }
            if exponent_negative {
                exponent = -exponent;
            }
            float = true;
        }
        self.i = i;
        if float {
            let value = exact_float(
                mantissa,
                digits + fraction_digits,
                exponent - fraction_digits as i64,
            )
            .map(|v| if negative { -v } else { v })
            .or_else(|| self.text[start..i].parse().ok())?;
            return value.is_finite().then_some(Plain::F64(value));
        }
        if negative && integer == 0 {
            return None;
        }
        Some(Plain::I64(if negative { -integer } else { integer }))
    }
}

/// `mantissa * 10^exponent` when one IEEE operation on exact operands gives it, hence correctly
/// rounded (Clinger's fast path: mantissa below 2^53, |exponent| at most 22); `None` otherwise,
/// for the full parser.
fn exact_float(mantissa: u64, digits: usize, exponent: i64) -> Option<f64> {
    const POWERS: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    if digits > 19 || mantissa >= 1 << 53 {
        return None;
    }
    let power = *POWERS.get(exponent.unsigned_abs() as usize)?;
    Some(if exponent < 0 {
        mantissa as f64 / power
    } else {
        mantissa as f64 * power
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{EnvelopeDefaults, EventDecoder};
    use omnistream_streams::Topic;

    /// A model call as the simulator and upstream producers write it.
    const MODEL_CALL: &str = r#"{"attempt":1,"correlation_id":"6bd86503-42dc-4553-9836-17e08e42131b","cost_usd":0.0045000000000000005,"emitted_at":"2026-11-01T00:00:01.588710Z","error_type":null,"event_id":"01a19467-ee34-7d7b-a0ec-ba6f595c81d3","finish_reason":"stop","http_status":200,"input_cost_usd":0.00186,"input_tokens":620,"latency_ms":1092.596,"model":"claude-sonnet-4-5","model_tier":"premium","node_type":"effect","operation":"chat","output_cost_usd":0.00264,"output_tokens":176,"provider":"anthropic","quality_score":null,"response_model":"claude-sonnet-4-5","source":"codegen","stage_name":"prompt_parsing","success":true,"time_to_first_token_ms":131.112,"total_tokens":796}"#;

    /// Values put in place of each field's value in turn: every JSON shape, the numbers the fast
    /// path reads and those it leaves alone, strings with escapes and control characters, and
    /// malformed tokens.
    const VALUES: &[&str] = &[
        "null",
        "true",
        "false",
        "tru",
        "nul",
        "0",
        "-0",
        "-1",
        "12",
        "012",
        "1.5",
        "-1.5e3",
        "1E+2",
        "2.0",
        "1e400",
        "-1e-400",
        "1.",
        ".5",
        "-",
        "1e",
        "123456789012345678",
        "-123456789012345678",
        "1234567890123456789",
        "99999999999999999999",
        r#""x""#,
        r#""""#,
        r#""a\"b""#,
        r#""\u00e9""#,
        r#""é""#,
        "\"tab\there\"",
        r#""2026-11-01T00:00:01Z""#,
        r#""2026-11-01 00:00:01""#,
        r#""not-a-uuid""#,
        r#""01A19467-EE34-7D7B-A0EC-BA6F595C81D3""#,
        "[]",
        "{}",
        r#"["a"]"#,
        r#"{"k":1}"#,
        r#""unterminated"#,
    ];

    /// Every variation of the model call the test knows: each value replaced, each key dropped,
    /// keys repeated, aliased, unknown or nested, whitespace, truncation and trailing bytes.
    fn corpus() -> Vec<String> {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(MODEL_CALL).unwrap();
        let pairs: Vec<(String, String)> = object
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        let render = |pairs: &[(String, String)]| {
            let body: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        };
        let mut lines = vec![MODEL_CALL.to_string(), render(&pairs)];
        for i in 0..pairs.len() {
            // Left out, these are assigned afresh (a new UUID, the time now): no two runs agree.
            let assigned = ["event_id", "correlation_id", "emitted_at"].contains(&&*pairs[i].0);
            for value in VALUES.iter().filter(|v| !(assigned && **v == "null")) {
                let mut changed = pairs.clone();
                changed[i].1 = value.to_string();
                lines.push(render(&changed));
            }
            if !assigned {
                let mut dropped = pairs.clone();
                dropped.remove(i);
                lines.push(render(&dropped));
            }
        }
        // Keys that differ from the ones the last line had at their place: the order reversed, a
        // key spelt with an escape, a key one byte longer or shorter than the predicted one.
        let mut reversed = pairs.clone();
        reversed.reverse();
        lines.push(render(&reversed));
        lines.push(render(&pairs));
        let unassigned =
            |i: &usize| !["event_id", "correlation_id", "emitted_at"].contains(&&*pairs[*i].0);
        for i in (0..pairs.len()).filter(unassigned).step_by(5) {
            let key = &pairs[i].0;
            let escaped = format!("\\u{:04x}{}", key.as_bytes()[0], &key[1..]);
            for changed_key in [escaped, format!("{key}x"), key[..key.len() - 1].to_string()] {
                let mut changed = pairs.clone();
                changed[i].0 = changed_key;
                lines.push(render(&changed));
                lines.push(render(&pairs));
            }
            // The key's closing quote replaced: no longer JSON.
            lines.push(render(&pairs).replacen(&format!("\"{key}\":"), &format!("\"{key}x:"), 1));
            lines.push(render(&pairs));
        }
        let base = MODEL_CALL.trim_end_matches('}');
        for extra in [
            r#""model":"gpt-4o""#,
            r#""prompt_tokens":5"#,
            r#""unknown_key":1"#,
            r#""metadata":{"a":1}"#,
            r#""payload":{"model":"x"}"#,
            r#""payload":{"http_status":500}"#,
        ] {
            lines.push(format!("{base},{extra}}}"));
        }
        lines.push(format!("{{\"prompt_tokens\":5,{}", &MODEL_CALL[1..]));
        let spaced = MODEL_CALL
            .replace(',', " ,\t")
            .replace(':', " : ")
            .replace('{', "{ ");
        lines.push(format!("  {spaced} \r"));
        for tail in ["x", ",", "}", " {}", "\n"] {
            lines.push(format!("{MODEL_CALL}{tail}"));
        }
        lines.push(format!("{base},}}"));
        for cut in [1, 2, 10, 40, MODEL_CALL.len() / 2, MODEL_CALL.len() - 1] {
            lines.push(MODEL_CALL[..cut].to_string());
        }
        lines.extend(["", "{}", "[1]", "\"s\"", "3", "null"].map(String::from));
        lines
    }

    #[test]
    fn same_bytes_finds_a_difference_at_every_position_of_every_length() {
        for n in 0..40 {
            let a: Vec<u8> = (0..n as u8).map(|i| b'a' + i % 26).collect();
            assert!(same_bytes(&a, &a.clone()), "length {n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a, &b), "length {n}, difference at {at}");
            }
        }
    }

    #[test]
    fn the_fast_path_yields_exactly_what_the_general_walk_yields() {
        let defaults = EnvelopeDefaults::default();
        let mut fast = EventDecoder::new(Topic::ModelCall, defaults.clone());
        let mut general = EventDecoder::new(Topic::ModelCall, defaults);
        general.fast_path = false;
        let lines = corpus();
        let (mut taken, mut accepted) = (0, 0);
        for line in &lines {
            let mut values = vec![Plain::Null; fast.layout.fields];
            taken += usize::from(scan(&fast.layout, line, &mut values).is_some());
            let result = fast.push_line(line.as_bytes());
            assert_eq!(result, general.push_line(line.as_bytes()), "line {line}");
            accepted += usize::from(result.is_ok());
        }
        // The comparison means something only if both paths were exercised.
        assert!(
            taken > 300 && accepted > 100,
            "{taken} of {} lines taken, {accepted} accepted",
            lines.len()
        );
        assert!(
            lines.len() - taken > 300,
            "the general walk took too few lines"
        );
        assert_eq!(fast.finish(), general.finish());
    }

    #[test]
    fn numbers_read_exactly_as_the_standard_parser_reads_them() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut texts: Vec<String> = [
            "0.1",
            "0.2",
            "0.3",
            "1092.596",
            "0.0045000000000000005",
            "7.5e-6",
            "-1.5e3",
            "1E+2",
            "2.0",
            "-0.0",
            "9007199254740993.0",
            "123456789012345678.5",
            "1e22",
            "1e23",
            "1e-22",
            "4.35e-05",
            "0.000000000000000000001",
            "17976931348623157e292",
        ]
        .map(String::from)
        .to_vec();
        for _ in 0..20_000 {
            let digits = rng.random_range(1..20);
            let integer: String = (0..rng.random_range(1..=digits.min(18)))
                .map(|_| char::from(b'0' + rng.random_range(0..10)))
                .collect();
            let integer = integer.trim_start_matches('0');
            let integer = if integer.is_empty() { "0" } else { integer };
            let fraction: String = (0..rng.random_range(1..12))
                .map(|_| char::from(b'0' + rng.random_range(0..10)))
                .collect();
            let mut text = format!("{integer}.{fraction}");
            if rng.random_bool(0.3) {
                text.push_str(&format!("e{}", rng.random_range(-30..30)));
            }
            texts.push(text);
        }
        for text in texts {
            let mut cursor = Cursor { text: &text, i: 0 };
            let Some(Plain::F64(value)) = cursor.number() else {
                panic!("{text} not read as a float");
            };
            let expected: f64 = text.parse().unwrap();
            assert_eq!(value.to_bits(), expected.to_bits(), "{text}");
        }
    }

    #[test]
    fn string_stops_are_found_at_every_offset() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        for len in 0..40 {
            for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                for at in 0..=len {
                    // Bytes just around the stops' values, and UTF-8 continuation bytes.
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [0x20, 0x21, 0x23, 0x5b, 0x5d, 0xc3, 0xa9, 0x7f][i % 8])
                        .collect();
                    if at < len {
                        bytes[at] = stop;
                    }
                    assert_eq!(string_stop(&bytes), naive(&bytes), "{bytes:?}");
                    if at + 1 < len {
                        bytes[at + 1] = b'"';
                        assert_eq!(string_stop(&bytes), naive(&bytes), "{bytes:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn plain_lines_take_the_fast_path_and_escapes_do_not() {
        let decoder = EventDecoder::new(Topic::ModelCall, EnvelopeDefaults::default());
        let taken = |line: &str| {
            let mut values = vec![Plain::Null; decoder.layout.fields];
            scan(&decoder.layout, line, &mut values).is_some()
        };
        assert!(taken(MODEL_CALL));
        assert!(!taken(&MODEL_CALL.replace("chat", r"ch\u0061t")));
        assert!(!taken(
            &MODEL_CALL.replace(r#""attempt":1"#, r#""attempt":1,"attempt":2"#)
        ));
        assert!(!taken(
            &MODEL_CALL.replace(r#""attempt":1"#, r#""extra":{"a":1}"#)
        ));
    }
}
