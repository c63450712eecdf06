//! Redaction and cleaning of text that comes from outside (the gateway, a browser): card numbers
//! are masked and control characters removed before anything is stored, logged, returned or
//! published. Every path that reads gateway or browser data goes through [`json`] or [`text`].
//!
//! - A card number is a run of 13 to 19 digits that passes the Luhn check. Digits may be any
//!   Unicode decimal digits (full-width `４`, Arabic-Indic, …) and may be grouped by up to three
//!   separator characters (whitespace including tab, `-`, `.`, `/`, `_` and their full-width or
//!   typographic forms); a run of digits with no separator is never split, so a 20-digit customer
//!   token is not a card number. A number spanning several groups may start or end inside one
//!   (`9 4111 1111 1111 1111`). It is replaced by its first six digits, `X`s and its last four
//!   (ASCII): `4111.1111.1111.1111` → `411111XXXXXX1111`.
//! - Control characters other than tab and newline (`\0`, `\r`, escape, C1 controls) are removed.
//! - Both are applied until nothing changes, so redaction is idempotent.

use std::borrow::Cow;

/// The code points of Unicode's decimal digit zeros (each starts ten consecutive digits 0–9).
const DIGIT_ZEROS: &[u32] = &[
    0x0030, 0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66, 0x0DE6,
    0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40,
    0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0,
    0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50,
    0x11DA0, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950,
    0x1FBF0,
];

/// Claims that name the invoice: their values are cleaned but never masked, since the relay keys
/// every record on them (a Luhn-valid numeric invoice number is not a card number).
const IDENTIFIERS: &[&str] = &["merchantID", "invoiceNo"];

/// Shortest and longest card numbers.
const MIN_DIGITS: usize = 13;
const MAX_DIGITS: usize = 19;
/// Most separator characters allowed between two digit groups of one number (`" - "`).
const MAX_SEPARATORS: usize = 3;

/// The value of a Unicode decimal digit.
pub fn digit_value(c: char) -> Option<u8> {
    if c.is_ascii_digit() {
        return Some(c as u8 - b'0');
    }
    if (c as u32) < 0x0660 {
        return None;
    }
    let cp = c as u32;
    DIGIT_ZEROS.iter().find(|&&zero| (zero..zero + 10).contains(&cp)).map(|zero| (cp - zero) as u8)
}

/// Characters that may group the digits of a card number.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '.' | '/' | '_' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FF0D}' | '\u{FF0E}' | '\u{FF0F}'
        )
}

/// The Luhn check over digit values.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// `first six + X… + last four` of a card number's digits.
fn mask_digits(digits: &[u8]) -> String {
    let n = digits.len();
    let ascii = |ds: &[u8]| ds.iter().map(|d| char::from(b'0' + d)).collect::<String>();
    format!("{}{}{}", ascii(&digits[..6]), "X".repeat(n - 10), ascii(&digits[n - 4..]))
}

/// A run of digits with no separator inside: byte range and digit values.
struct Group {
    start: usize,
    end: usize,
    digits: Vec<u8>,
}

/// Masks every card number in `s` once (see the module documentation).
fn mask_once(s: &str) -> Option<String> {
    // Groups of consecutive digits, split into chains joined by short separator runs.
    let mut chains: Vec<Vec<Group>> = Vec::new();
    let mut current: Vec<Group> = Vec::new();
    let mut separators = 0usize;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if let Some(d) = digit_value(c) {
            let mut group = Group { start: i, end: i + c.len_utf8(), digits: vec![d] };
            while let Some(&(j, next)) = chars.peek() {
                let Some(d) = digit_value(next) else { break };
                group.digits.push(d);
                group.end = j + next.len_utf8();
                chars.next();
            }
            // `current` is empty, or its last group ended with 1 to 3 separators.
            current.push(group);
            separators = 0;
        } else if is_separator(c) && !current.is_empty() {
            separators += 1;
            if separators > MAX_SEPARATORS {
                chains.push(std::mem::take(&mut current));
            }
        } else {
            separators = 0;
            if !current.is_empty() {
                chains.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        chains.push(current);
    }

    let mut spans: Vec<(usize, usize, String)> = Vec::new();
    for chain in &chains {
        let whole = whole_groups(chain);
        spans.extend(if whole.is_empty() { across_groups(s, chain) } else { whole });
    }
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    for (start, end, masked) in spans {
        out.push_str(&s[copied..start]);
        out.push_str(&masked);
        copied = end;
    }
    out.push_str(&s[copied..]);
    Some(out)
}

/// In a chain, left to right, the longest card number made of whole groups starting at each group.
fn whole_groups(chain: &[Group]) -> Vec<(usize, usize, String)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chain.len() {
        let mut found = None;
        let mut digits: Vec<u8> = Vec::new();
        for (j, group) in chain.iter().enumerate().skip(i) {
            digits.extend_from_slice(&group.digits);
            if digits.len() > MAX_DIGITS {
                break;
            }
            if digits.len() >= MIN_DIGITS && luhn(&digits) {
                found = Some((j, mask_digits(&digits)));
            }
        }
        match found {
            Some((j, masked)) => {
                spans.push((chain[i].start, chain[j].end, masked));
                i = j + 1;
            }
            None => i += 1,
        }
    }
    spans
}

/// In a chain with no whole-group card number, left to right, the longest card number starting
/// at each digit that spans several groups (`9 4111 1111 1111 1111`: a digit glued to a formatted
/// number must not hide it). A single group is never split.
fn across_groups(s: &str, chain: &[Group]) -> Vec<(usize, usize, String)> {
    // Every digit of the chain: (group index, byte start, byte end, value).
    let mut digits: Vec<(usize, usize, usize, u8)> = Vec::new();
    for (g, group) in chain.iter().enumerate() {
        let mut at = group.start;
        for (c, &d) in s[group.start..group.end].chars().zip(&group.digits) {
            digits.push((g, at, at + c.len_utf8(), d));
            at += c.len_utf8();
        }
    }
    let mut spans = Vec::new();
    let mut i = 0;
    while i < digits.len() {
        let mut found = None;
        for len in (MIN_DIGITS..=MAX_DIGITS).rev() {
            let last = i + len - 1;
            if last >= digits.len() || digits[i].0 == digits[last].0 {
                continue;
            }
            let values: Vec<u8> = digits[i..=last].iter().map(|d| d.3).collect();
            if luhn(&values) {
                found = Some((last, mask_digits(&values)));
                break;
            }
        }
        match found {
            Some((last, masked)) => {
                spans.push((digits[i].1, digits[last].2, masked));
                i = last + 1;
            }
            None => i += 1,
        }
    }
    spans
}

/// `s` with every card number masked, applied until nothing changes.
pub fn card_numbers(s: &str) -> Cow<'_, str> {
    let Some(mut masked) = mask_once(s) else { return Cow::Borrowed(s) };
    // Each pass masks at least one more digit, so this ends.
    while let Some(again) = mask_once(&masked) {
        masked = again;
    }
    Cow::Owned(masked)
}

/// Whether `c` is removed by [`control_chars`].
pub fn is_removed_control(c: char) -> bool {
    c.is_control() && c != '\t' && c != '\n'
}

/// `s` without control characters other than tab and newline.
pub fn control_chars(s: &str) -> Cow<'_, str> {
    if s.chars().any(is_removed_control) {
        Cow::Owned(s.chars().filter(|&c| !is_removed_control(c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// `s` cleaned of control characters and with every card number masked.
pub fn text(s: &str) -> Cow<'_, str> {
    match control_chars(s) {
        Cow::Borrowed(b) => card_numbers(b),
        Cow::Owned(o) => Cow::Owned(card_numbers(&o).into_owned()),
    }
}

/// Whether `s` contains a card number (a run [`card_numbers`] would mask).
pub fn contains_card_number(s: &str) -> bool {
    mask_once(s).is_some()
}

/// JSON text with [`text`] applied to every string (keys and values, at any depth) and every
/// integer literal that is a card number replaced by its masked string. Values of `merchantID`
/// and `invoiceNo` are only cleaned. Numbers are otherwise kept exactly as written (never through
/// a float). Text that is not JSON is handled the same way, never panics, and may stay invalid.
pub fn json(text_in: &str) -> Cow<'_, str> {
    let b = text_in.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut key: Option<String> = None;
    let mut i = 0;
    let replace = |out: &mut String, copied: &mut usize, start: usize, end: usize, with: &str| {
        out.push_str(&text_in[*copied..start]);
        out.push_str(with);
        *copied = end;
    };
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let end = (i + 1).min(b.len());
                i = end;
                let Some(literal) = text_in.get(start..end) else { continue };
                let Ok(value) = serde_json::from_str::<String>(literal) else { continue };
                let after = b[end..].iter().position(|c| !c.is_ascii_whitespace()).map(|p| b[end + p]);
                let is_key = after == Some(b':');
                let identifier = !is_key && key.as_deref().is_some_and(|k| IDENTIFIERS.contains(&k));
                let cleaned = if identifier { control_chars(&value) } else { text(&value) };
                if cleaned != value.as_str() {
                    let encoded = serde_json::to_string(cleaned.as_ref()).unwrap_or_default();
                    replace(&mut out, &mut copied, start, end, &encoded);
                }
                key = if is_key { Some(cleaned.into_owned()) } else { None };
            }
            b'0'..=b'9' | b'-' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                    i += 1;
                }
                let literal = &text_in[start..i];
                let identifier = key.as_deref().is_some_and(|k| IDENTIFIERS.contains(&k));
                if !identifier && literal.bytes().all(|c| c.is_ascii_digit()) {
                    if let Cow::Owned(masked) = card_numbers(literal) {
                        replace(&mut out, &mut copied, start, i, &format!("\"{masked}\""));
                    }
                }
                key = None;
            }
            b'{' | b'[' | b',' => {
                key = None;
                i += 1;
            }
            _ => i += 1,
        }
    }
    if copied == 0 && out.is_empty() {
        return Cow::Borrowed(text_in);
    }
    out.push_str(&text_in[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
