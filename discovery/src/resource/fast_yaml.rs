//! A fast road from one YAML document to its JSON value, taken only where the answer is, by
//! construction, the one serde-saphyr (the decoder of record) gives.
//!
//! serde-saphyr reads about 13 MiB/s on one core here, so a mesh of 100,000 pods (105 MiB of
//! YAML) took most of discovery's start-up to decode. Through yaml-rust2's event parser, from
//! which serde-saphyr's parser descends, the same text becomes values about 3 times faster
//! (`examples/yaml_decode_bench.rs`). The two agree on
//! the structure of a document; they differ in what a plain scalar means (YAML 1.1 booleans
//! such as `yes`, octal, `.inf`, timestamps ...), and only serde-saphyr gives the error messages
//! users see. So this path builds the value itself and gives up on the whole document (`None`:
//! the caller decodes it with serde-saphyr) at anything whose meaning it has not pinned down:
//! anchors, aliases, tags, merge keys, duplicate keys, non-string keys, block scalars (`|`, `>`:
//! the two chomp a blank-only one differently), a plain scalar outside the few shapes below, and
//! every parse error.
//!
//! Plain scalars it resolves, each meaning the same under serde-saphyr's rules:
//! - `null`, `~` and the empty scalar: null; `true`, `false`: booleans;
//! - decimal integers without sign, leading zero or separators, of at most 18 digits;
//! - text starting with a letter or `/` that is no YAML 1.1 or 1.2 keyword (`yes`, `Off`, `NULL`,
//!   `.inf` spellings ...): a string;
//! - text of lowercase letters and digits starting with a digit, with a letter other than `e`
//!   and no `0x`/`0o`/`0b` prefix (pod-template hashes): a string;
//! - digits with two or more dots (addresses, versions): a string.
//!
//! `tests/fast_yaml.rs` compares both decoders on generated documents and on every YAML file of
//! the test data.

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// The JSON value of `document` (one YAML document), or `None` where serde-saphyr must decide.
pub fn json_value(document: &str) -> Option<Value> {
    // A `%YAML 1.1` directive could change what plain scalars mean.
    if document.starts_with('%') || document.contains("\n%") {
        return None;
    }
    let mut parser = Parser::new_from_str(document);
    let mut builder = Builder::default();
    loop {
        let (event, _) = parser.next_token().ok()?;
        match event {
            Event::StreamStart | Event::Nothing => {}
            // One document per text: the caller split them.
            Event::DocumentStart if builder.started => return None,
            Event::DocumentStart => builder.started = true,
            Event::DocumentEnd => {}
            Event::StreamEnd => return builder.root,
            Event::Alias(_) => return None,
            Event::Scalar(text, style, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    return None;
                }
                builder.scalar(text, style)?;
            }
            Event::SequenceStart(anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    return None;
                }
                builder.stack.push(Open::Sequence(Vec::new()));
            }
            Event::MappingStart(anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    return None;
                }
                builder.stack.push(Open::Mapping(Map::new(), None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let value = match builder.stack.pop()? {
                    Open::Sequence(items) => Value::Array(items),
                    Open::Mapping(entries, None) => Value::Object(entries),
                    Open::Mapping(_, Some(_)) => return None,
                };
                builder.value(value)?;
            }
        }
    }
}

#[derive(Default)]
struct Builder {
    started: bool,
    stack: Vec<Open>,
    root: Option<Value>,
}

enum Open {
    Sequence(Vec<Value>),
    /// The entries so far and the key waiting for its value.
    Mapping(Map<String, Value>, Option<String>),
}

impl Builder {
    fn scalar(&mut self, text: String, style: TScalarStyle) -> Option<()> {
        if let Some(Open::Mapping(entries, pending @ None)) = self.stack.last_mut() {
            let key = match style {
                TScalarStyle::Plain if is_plain_string(&text) => text,
                TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => text,
                _ => return None,
            };
            // `<<` merges mappings in serde-saphyr; a repeated key is an error there.
            if key == "<<" || entries.contains_key(&key) {
                return None;
            }
            *pending = Some(key);
            return Some(());
        }
        let value = match style {
            TScalarStyle::Plain => plain_value(&text)?,
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => Value::String(text),
            // yaml-rust2 and serde-saphyr differ on the chomping of some block scalars (a `|`
            // whose only line is blank: "\n" against ""), and they are rare outside Secrets.
            _ => return None,
        };
        self.value(value)
    }

    fn value(&mut self, value: Value) -> Option<()> {
        match self.stack.last_mut() {
            None => {
                if self.root.is_some() {
                    return None;
                }
                self.root = Some(value);
            }
            Some(Open::Sequence(items)) => items.push(value),
            Some(Open::Mapping(entries, pending)) => {
                // A mapping or sequence as a key.
                let key = pending.take()?;
                entries.insert(key, value);
            }
        }
        Some(())
    }
}

/// What a plain (unquoted) scalar means, when it is one of the shapes of the module doc.
fn plain_value(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" => return Some(Value::Null),
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    if is_decimal_integer(text) {
        return text
            .parse::<u64>()
            .ok()
            .map(|n| Value::Number(Number::from(n)));
    }
    is_plain_string(text).then(|| Value::String(text.to_owned()))
}

fn is_decimal_integer(text: &str) -> bool {
    let bytes = text.as_bytes();
    match bytes {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.len() < 18 && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Spellings that YAML 1.1 or 1.2 give another type when written plain, compared without case.
const KEYWORDS: &[&str] = &[
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "inf", "infinity", "nan",
];

/// Whether a plain scalar is text under serde-saphyr's rules and one of the shapes above.
fn is_plain_string(text: &str) -> bool {
    let bytes = text.as_bytes();
    match bytes.first() {
        Some(first) if first.is_ascii_alphabetic() => !KEYWORDS
            .iter()
            .any(|keyword| keyword.eq_ignore_ascii_case(text)),
        Some(b'/') => true,
        Some(first) if first.is_ascii_digit() => is_hash_like(bytes) || is_dotted_digits(bytes),
        _ => false,
    }
}

/// Lowercase letters and digits, starting with a digit, with a letter that no number has.
fn is_hash_like(bytes: &[u8]) -> bool {
    let radix_prefix =
        bytes.len() > 1 && bytes[0] == b'0' && matches!(bytes[1], b'x' | b'o' | b'b');
    !radix_prefix
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_digit() || byte.is_ascii_lowercase())
        && bytes
            .iter()
            .any(|byte| byte.is_ascii_lowercase() && *byte != b'e')
}

/// Digit runs joined by two or more dots (`10.251.1.1`, `1.4.2`).
fn is_dotted_digits(bytes: &[u8]) -> bool {
    let mut parts = 0;
    for part in bytes.split(|byte| *byte == b'.') {
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
        parts += 1;
    }
    parts >= 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_only_in_the_known_shapes() {
        assert_eq!(plain_value("8080"), Some(Value::from(8080)));
        assert_eq!(plain_value("0"), Some(Value::from(0)));
        assert_eq!(plain_value("reviews-v1"), Some(Value::from("reviews-v1")));
        assert_eq!(plain_value("10.251.1.1"), Some(Value::from("10.251.1.1")));
        assert_eq!(plain_value("7d9f8c1b5"), Some(Value::from("7d9f8c1b5")));
        assert_eq!(plain_value("~"), Some(Value::Null));
        for undecided in [
            "yes",
            "Off",
            "NULL",
            "True",
            "0755",
            "0x1f",
            "1e5",
            "1_000",
            "+1",
            "-1",
            ".inf",
            "1.5",
            "12:30",
            "2001-12-14",
            "-",
            "*",
            "@x",
            "0b1",
            "123456789012345678901",
        ] {
            assert_eq!(plain_value(undecided), None, "{undecided}");
        }
    }

    #[test]
    fn anchors_tags_merges_and_repeats_are_left_to_serde_saphyr() {
        for document in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "base: {a: 1}\nderived:\n  <<: {a: 1}\n",
            "a: 1\na: 2\n",
            "? [a]\n: 1\n",
            "a: 1\n---\nb: 2\n",
            "a: [1\n",
        ] {
            assert_eq!(json_value(document), None, "{document}");
        }
    }

    #[test]
    fn a_kubernetes_object_is_decoded() {
        let document = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: {app: a, \"n\": '1'}\nstatus:\n  podIPs:\n  - ip: 10.0.0.1\n";
        let expected = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "labels": {"app": "a", "n": "1"}},
            "status": {"podIPs": [{"ip": "10.0.0.1"}]},
        });
        assert_eq!(json_value(document), Some(expected));
    }
}
