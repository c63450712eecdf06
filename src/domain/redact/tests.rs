//! Redaction: every card number shape found so far, and properties over arbitrary text.

use super::*;

#[test]
fn masks_formatted_card_numbers() {
    let cases = [
        ("4111111111111111", "411111XXXXXX1111"),
        ("4111.1111.1111.1111", "411111XXXXXX1111"),
        ("4111 1111 1111 1111", "411111XXXXXX1111"),
        ("4111-1111-1111-1111", "411111XXXXXX1111"),
        ("4111\t1111\t1111\t1111", "411111XXXXXX1111"),
        ("4111111111111111/1230", "411111XXXXXX1111/1230"),
        ("card 4111111111111111", "card 411111XXXXXX1111"),
        ("４１１１１１１１１１１１１１１１", "411111XXXXXX1111"),
        ("5555 5555 5555 4444", "555555XXXXXX4444"),
        ("378282246310005", "378282XXXXX0005"),
        ("6011 - 1111 - 1111 - 1117 ok", "601111XXXXXX1117 ok"),
    ];
    for (raw, masked) in cases {
        assert_eq!(text(raw), masked, "{raw:?}");
    }
}

#[test]
fn a_digit_glued_to_a_formatted_number_does_not_hide_it() {
    // Found by fuzzing.
    for raw in ["card ４4111.1111.1111.1111/1230", "94111 1111 1111 1111", "4111 1111 1111 11119"] {
        let masked = text(raw);
        let digits: String = masked.chars().filter_map(digit_value).map(|d| char::from(b'0' + d)).collect();
        assert!(!digits.contains("4111111111111111"), "{raw:?} -> {masked:?}");
        assert!(masked.contains('X'), "{raw:?} -> {masked:?}");
    }
}

#[test]
fn leaves_what_is_not_a_card_number() {
    for s in
        ["411111XXXXXX1111", "28052010234224845229", "4111111111111112", "1523953661", "20261127080508", "Success", ""]
    {
        assert_eq!(text(s), s, "{s:?}");
    }
}

#[test]
fn removes_control_characters_but_tab_and_newline() {
    assert_eq!(text("a\u{0}b\r\n\tc\u{1b}[0m\u{85}"), "ab\n\tc[0m");
}

#[test]
fn redacts_every_string_and_card_like_integers_in_json() {
    let raw = r#"{"invoiceNo":"4111111111111111","accountNo":"4111 1111 1111 1111","x":[{"cardNumber":4111111111111111}],
        "amount":1000.50,"respDesc":"a\u0000b card 4111111111111111","n":0.10000000000000000555}"#;
    let v: serde_json::Value = serde_json::from_str(&json(raw)).unwrap();
    assert_eq!(v["invoiceNo"], "4111111111111111", "identifiers are kept");
    assert_eq!(v["accountNo"], "411111XXXXXX1111");
    assert_eq!(v["x"][0]["cardNumber"], "411111XXXXXX1111");
    assert_eq!(v["respDesc"], "ab card 411111XXXXXX1111");
    assert!(json(raw).contains("0.10000000000000000555"), "numbers keep their text");
    assert!(matches!(json(r#"{"a":"b","c":1}"#), Cow::Borrowed(_)));
}

#[test]
fn never_panics_on_broken_json() {
    for s in ["\"", "\"\\", "{\"a\":\"4111111111111111", "-", "\"\\u00", "\"é\\\"é"] {
        let _ = json(s);
    }
}

mod properties {
    use super::super::*;
    use proptest::prelude::*;

    /// A Luhn-valid card number of 13 to 19 digits, from any prefix.
    fn card() -> impl Strategy<Value = String> {
        proptest::collection::vec(0u8..10, 12..19).prop_map(|mut digits| {
            digits[0] = digits[0].max(1);
            let check = (0..10).find(|c| {
                let mut all = digits.clone();
                all.push(*c);
                luhn(&all)
            });
            digits.push(check.unwrap_or(0));
            digits.iter().map(|d| char::from(b'0' + d)).collect()
        })
    }

    /// `card` written with separators, full-width digits or neither, in some text.
    fn planted() -> impl Strategy<Value = (String, String)> {
        let sep = prop_oneof![Just(""), Just(" "), Just("-"), Just("."), Just("/"), Just("\t"), Just(" - ")];
        (card(), sep, any::<bool>(), "[a-zA-Z :]{0,6}", "[a-zA-Z :]{0,6}").prop_map(
            |(card, sep, wide, before, after)| {
                let mut written: String = card
                    .chars()
                    .collect::<Vec<_>>()
                    .chunks(4)
                    .map(|c| c.iter().collect::<String>())
                    .collect::<Vec<_>>()
                    .join(sep);
                if wide {
                    written = written
                        .chars()
                        .map(|c| c.to_digit(10).and_then(|d| char::from_u32(0xFF10 + d)).unwrap_or(c))
                        .collect();
                }
                (format!("{before} {written} {after}"), card)
            },
        )
    }

    fn ascii_digits(s: &str) -> String {
        s.chars().filter_map(digit_value).map(|d| char::from(b'0' + d)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn masking_never_panics_and_is_idempotent(s in "\\PC{0,60}") {
            let once = text(&s).into_owned();
            prop_assert_eq!(text(&once).into_owned(), once.clone());
            prop_assert!(!contains_card_number(&once), "{:?} -> {:?}", s, once);
            let _ = json(&s);
        }

        #[test]
        fn no_planted_card_number_survives((value, card) in planted()) {
            let masked = text(&value).into_owned();
            prop_assert!(!ascii_digits(&masked).contains(&card), "{:?} -> {:?}", value, masked);
            prop_assert_eq!(text(&masked).into_owned(), masked.clone());
            let claims = serde_json::json!({"respCode": "0000", "x": {"y": [value.clone()]}, "n": card.parse::<u64>().ok()});
            let redacted = json(&claims.to_string()).into_owned();
            prop_assert!(!ascii_digits(&redacted).contains(&card), "{} -> {}", claims, redacted);
            prop_assert!(serde_json::from_str::<serde_json::Value>(&redacted).is_ok(), "{}", redacted);
            prop_assert_eq!(json(&redacted).into_owned(), redacted);
        }

        #[test]
        fn json_redaction_keeps_valid_json_valid(v in proptest::arbitrary::any::<std::collections::BTreeMap<String, (String, i64, bool)>>()) {
            let text_in = serde_json::to_string(&v).unwrap();
            let out = json(&text_in);
            prop_assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok(), "{} -> {}", text_in, out);
        }
    }
}
