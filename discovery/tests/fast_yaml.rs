//! The fast YAML road must give serde-saphyr's value whenever it gives one.

use std::path::{Path, PathBuf};

use discovery::resource::fast_yaml::json_value;
use proptest::prelude::*;
use serde_json::Value;

fn saphyr(document: &str) -> Result<Value, String> {
    serde_saphyr::from_str::<Value>(document).map_err(|error| error.to_string())
}

/// Fails unless the fast road either steps aside or agrees with serde-saphyr.
fn agrees(document: &str) -> Result<bool, String> {
    let Some(fast) = json_value(document) else {
        return Ok(false);
    };
    match saphyr(document) {
        Ok(slow) if slow == fast => Ok(true),
        Ok(slow) => Err(format!("{document:?}\nfast: {fast}\nserde-saphyr: {slow}")),
        Err(error) => Err(format!(
            "{document:?}\nfast: {fast}\nserde-saphyr refused it: {error}"
        )),
    }
}

fn yaml_files(directory: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(directory).expect("test data directory");
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "yaml")
        {
            out.push(path);
        }
    }
}

#[test]
fn every_test_data_document_decodes_as_serde_saphyr_decodes_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    yaml_files(&root.join("testdata"), &mut files);
    yaml_files(&root.join("../examples"), &mut files);
    assert!(files.len() > 20, "test data found: {files:?}");
    let (mut documents, mut fast) = (0, 0);
    for file in &files {
        let text = std::fs::read_to_string(file).expect("test data file");
        for document in text.split("\n---") {
            documents += 1;
            match agrees(document) {
                Ok(took_it) => fast += usize::from(took_it),
                Err(difference) => panic!("{}: {difference}", file.display()),
            }
        }
    }
    // The road is no use if it steps aside for ordinary configuration.
    assert!(
        fast * 2 > documents,
        "the fast road took {fast} of {documents} documents"
    );
}

/// Scalars as a user may write them, plain and quoted, tricky spellings included.
fn scalar() -> impl Strategy<Value = String> {
    let spellings = prop::sample::select(vec![
        "yes",
        "No",
        "ON",
        "off",
        "y",
        "N",
        "true",
        "False",
        "TRUE",
        "null",
        "Null",
        "~",
        "",
        "0",
        "00",
        "007",
        "0755",
        "0x1F",
        "0o17",
        "0b101",
        "1_000",
        "+5",
        "-5",
        "-0",
        "1e3",
        "1E3",
        "1.5",
        ".5",
        "5.",
        ".inf",
        "-.Inf",
        ".NaN",
        "inf",
        "nan",
        "12:30:00",
        "1:20",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "10.0.0.1",
        "1.4.2",
        "1.2",
        "7d9f8c1b5",
        "5e",
        "0e1",
        "1b",
        "abc",
        "a b",
        "/healthz",
        "reviews-v1",
        "a:b",
        "http://x/y",
        "9223372036854775807",
        "18446744073709551616",
        "123456789012345678",
        "1234567890123456789",
        "é",
        "ñu",
        "-dash",
        "_under",
        "@at",
        "x#y",
        // Escape sequences, meant inside `Style::Escaped`.
        r"\x41",
        r"\u00e9",
        r"\U0001F600",
        r"\t",
        r"\n",
        r"\N",
        r"\_",
        r"\L",
        r"\P",
        r"\0",
        r"\e",
        r"\ ",
        r"\/",
        r"\q",
        r"a\\b",
        r"\x4",
        r"tab\there",
    ]);
    let generated = "[a-z0-9./:_ +-]{0,12}";
    prop_oneof![spellings.prop_map(str::to_owned), generated]
}

#[derive(Debug, Clone)]
enum Node {
    Scalar(String, Style),
    Sequence(Vec<Node>),
    Mapping(Vec<(String, Style, Node)>),
}

#[derive(Debug, Clone, Copy)]
enum Style {
    Plain,
    Single,
    Double,
    /// A `|` block scalar (values in block style only).
    Literal,
    /// A plain scalar folded over two lines at its first space.
    Folded,
    /// Double-quoted as written, so backslashes are escape sequences.
    Escaped,
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        Just(Style::Plain),
        Just(Style::Single),
        Just(Style::Double),
        Just(Style::Literal),
        Just(Style::Folded),
        Just(Style::Escaped),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = (scalar(), style()).prop_map(|(text, style)| Node::Scalar(text, style));
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..5).prop_map(Node::Sequence),
            prop::collection::vec((scalar(), style(), inner), 1..5).prop_map(Node::Mapping),
        ]
    })
}

/// `text` as a key or a flow scalar, where block scalars and line breaks have no place.
fn quoted(text: &str, style: Style) -> String {
    match style {
        Style::Plain | Style::Folded => text.to_owned(),
        Style::Literal => quoted(text, Style::Double),
        Style::Escaped => format!("\"{}\"", text.replace('"', "")),
        Style::Single => format!("'{}'", text.replace('\'', "''")),
        Style::Double => format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")),
    }
}

/// How a block document is laid out.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// A sequence under a key starts at the key's indentation (`ports:\n- name: http`), as
    /// kubectl writes it, instead of two columns in.
    compact: bool,
    /// Scalars carry a trailing `# comment`.
    comments: bool,
}

/// Block style.
fn write(node: &Node, indent: usize, layout: Layout, out: &mut String) {
    let pad = " ".repeat(indent);
    let end_scalar = |out: &mut String| {
        if layout.comments {
            out.push_str(" # note");
        }
        out.push('\n');
    };
    match node {
        Node::Scalar(text, Style::Literal) => {
            out.push_str(" |");
            end_scalar(out);
            out.push_str(&pad);
            out.push_str(text);
            out.push('\n');
        }
        Node::Scalar(text, Style::Folded) => {
            out.push(' ');
            match text.split_once(' ') {
                Some((first, rest)) => {
                    out.push_str(first);
                    out.push('\n');
                    out.push_str(&pad);
                    out.push_str(rest);
                }
                None => out.push_str(text),
            }
            end_scalar(out);
        }
        Node::Scalar(text, style) => {
            out.push(' ');
            out.push_str(&quoted(text, *style));
            end_scalar(out);
        }
        Node::Sequence(items) => {
            out.push('\n');
            // Called with the indentation of its entries; a compact sequence goes back two.
            let dash = if layout.compact {
                indent.saturating_sub(2)
            } else {
                indent
            };
            for item in items {
                out.push_str(&" ".repeat(dash));
                out.push('-');
                write(item, dash + 2, layout, out);
            }
        }
        Node::Mapping(entries) => {
            out.push('\n');
            for (key, style, value) in entries {
                out.push_str(&pad);
                out.push_str(&quoted(key, *style));
                out.push(':');
                write(value, indent + 2, layout, out);
            }
        }
    }
}

/// Flow style, as JSON-minded tools write it.
fn write_flow(node: &Node, out: &mut String) {
    match node {
        Node::Scalar(text, style) => out.push_str(&quoted(text, *style)),
        Node::Sequence(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_flow(item, out);
            }
            out.push(']');
        }
        Node::Mapping(entries) => {
            out.push('{');
            for (index, (key, style, value)) in entries.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quoted(key, *style));
                out.push_str(": ");
                write_flow(value, out);
            }
            out.push('}');
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn generated_block_documents_decode_as_serde_saphyr_decodes_them(
        entries in prop::collection::vec((scalar(), style(), node()), 1..6),
        compact in any::<bool>(),
        comments in any::<bool>(),
    ) {
        let layout = Layout { compact, comments };
        let mut document = String::new();
        for (key, style, value) in &entries {
            document.push_str(&quoted(key, *style));
            document.push(':');
            write(value, 2, layout, &mut document);
        }
        if let Err(difference) = agrees(&document) {
            return Err(TestCaseError::fail(difference));
        }
    }

    #[test]
    fn generated_flow_documents_decode_as_serde_saphyr_decodes_them(tree in node()) {
        let mut document = String::new();
        write_flow(&tree, &mut document);
        document.push('\n');
        if let Err(difference) = agrees(&document) {
            return Err(TestCaseError::fail(difference));
        }
    }
}

#[test]
fn kubectl_style_documents_take_the_fast_road() {
    let document = "apiVersion: v1 # the core group\nkind: Service\nmetadata:\n  name: reviews\n  annotations:\n    note: a long\n      folded line\nspec:\n  ports:\n  - name: http\n    port: 9080\n  - name: grpc\n    port: 9090\n";
    assert_eq!(agrees(document), Ok(true));
}
