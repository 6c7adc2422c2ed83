//! Splits a multi-document YAML stream at `---` markers, keeping each document's position.
//!
//! Splitting before parsing lets one broken document be reported (with its index) while
//! the others still load.

/// One document of a YAML stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawDocument<'a> {
    /// 1-based position among the documents of the stream.
    pub index: usize,
    /// 1-based line where the document's text starts.
    pub line: usize,
    pub text: std::borrow::Cow<'a, str>,
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
}

/// Only comments and blank lines.
fn is_blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#') || line.starts_with('%'))
}

/// Splits at lines that start with `---` (a document start) or `...` (a document end).
/// A document marker can only appear in column 0, where no block scalar content can.
pub(crate) fn split_documents(stream: &str) -> Vec<RawDocument<'_>> {
    let mut documents = Vec::new();
    let mut current_start: Option<usize> = Some(0);
    let mut current_line = 1;
    let mut first_piece = true;
    let mut offset = 0;
    let mut pending_inline: Option<String> = None;

    let mut push = |start: usize, end: usize, line: usize, inline: Option<String>, first: bool| {
        let body = &stream[start..end];
        let text: std::borrow::Cow<'_, str> = match inline {
            Some(head) => format!("{head}\n{body}").into(),
            None => body.into(),
        };
        // Text before the first marker is not a document when it holds nothing.
        if first && is_blank(&text) {
            return;
        }
        documents.push((line, text));
    };

    for (line_number, line) in stream.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if is_marker(bare, "---") || is_marker(bare, "...") {
            if let Some(start) = current_start.take() {
                let inline = pending_inline.take();
                push(start, offset, current_line, inline, first_piece);
            }
            first_piece = false;
            if let Some(after_marker) = bare.strip_prefix("---") {
                let rest = after_marker.trim();
                if !rest.is_empty() {
                    pending_inline = Some(rest.to_string());
                }
                current_start = Some(offset + line.len());
                current_line = line_number + 2;
            } else {
                // After `...` only a new `---` starts the next document.
                current_start = None;
            }
        } else if current_start.is_none() && !is_blank(bare) {
            current_start = Some(offset);
            current_line = line_number + 1;
        }
        offset += line.len();
    }
    if let Some(start) = current_start {
        let inline = pending_inline.take();
        push(start, stream.len(), current_line, inline, first_piece);
    }

    documents
        .into_iter()
        .enumerate()
        .map(|(position, (line, text))| RawDocument {
            index: position + 1,
            line,
            text,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(stream: &str) -> Vec<String> {
        split_documents(stream)
            .into_iter()
            .map(|document| document.text.trim().to_string())
            .collect()
    }

    #[test]
    fn splits_at_markers_and_numbers_documents() {
        let stream = "a: 1\n---\nb: 2\n---\n\n---\nc: 3\n";
        assert_eq!(texts(stream), vec!["a: 1", "b: 2", "", "c: 3"]);
        let documents = split_documents(stream);
        assert_eq!(documents[1].index, 2);
        assert_eq!(documents[1].line, 3);
        assert_eq!(documents[3].line, 7);
    }

    #[test]
    fn leading_marker_and_comments_do_not_make_a_document() {
        assert_eq!(texts("# header\n---\na: 1\n"), vec!["a: 1"]);
        assert_eq!(texts("---\na: 1\n---\nb: 2"), vec!["a: 1", "b: 2"]);
    }

    #[test]
    fn indented_dashes_belong_to_the_document() {
        let stream = "a: |\n  ---\n  text\nb: 2\n";
        assert_eq!(split_documents(stream).len(), 1);
    }

    #[test]
    fn content_on_the_marker_line_is_kept() {
        assert_eq!(texts("--- {a: 1}\n"), vec!["{a: 1}"]);
    }

    #[test]
    fn end_marker_closes_a_document() {
        assert_eq!(texts("a: 1\n...\n---\nb: 2\n"), vec!["a: 1", "b: 2"]);
    }
}
