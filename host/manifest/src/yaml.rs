//! Frontmatter splitting and a small YAML tree with line numbers.
//!
//! The tree is built from `yaml-rust2` parser events rather than its `Yaml`
//! document type so that every node keeps the line it starts on, duplicate
//! keys are refused, and aliases (which could expand exponentially) never
//! reach the schema code.

use std::path::Path;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

use crate::error::ManifestError;

/// Deeper nesting than this is refused so that the recursive schema code and
/// `Drop` stay bounded on hostile input.
const MAX_DEPTH: usize = 64;

/// A manifest file split at its frontmatter fences.
#[derive(Debug)]
pub(crate) struct Split<'a> {
    /// The YAML between the fences.
    pub yaml: &'a str,
    /// Number of file lines before the first YAML line (the opening fence).
    pub yaml_line_offset: usize,
    /// Everything after the closing fence.
    pub body: &'a str,
}

fn is_fence(line: &str) -> bool {
    line.trim_end() == "---"
}

/// Splits `---\n<yaml>\n---\n<body>`.
pub(crate) fn split_frontmatter<'a>(
    path: &Path,
    text: &'a str,
) -> Result<Split<'a>, ManifestError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let syntax = |line: usize, message: &str| ManifestError::Syntax {
        path: path.to_path_buf(),
        line,
        message: message.to_string(),
    };
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if !is_fence(first) {
        return Err(syntax(
            1,
            "missing frontmatter: the file must start with a `---` line, then YAML keys, then a closing `---` line",
        ));
    }
    let yaml_start = first.len();
    let mut offset = yaml_start;
    for line in lines {
        if is_fence(line) {
            return Ok(Split {
                yaml: &text[yaml_start..offset],
                yaml_line_offset: 1,
                body: &text[offset + line.len()..],
            });
        }
        offset += line.len();
    }
    Err(syntax(
        1,
        "unterminated frontmatter: no closing `---` line after the opening one",
    ))
}

/// One YAML node and the 1-based file line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub line: usize,
    pub kind: Kind,
}

/// The shapes the schema code distinguishes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// Empty value, `~` or `null`.
    Null,
    /// A scalar; `plain` is false for quoted and block scalars, which are
    /// always strings.
    Str {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order: key, key line, value.
    Map(Vec<(String, usize, Node)>),
}

impl Node {
    /// A word for error messages: "a list", "a map", ...
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "empty",
            Kind::Str { plain: true, text } if bool_value(text).is_some() => "a boolean",
            Kind::Str { plain: true, text } if text.parse::<i64>().is_ok() => "a number",
            Kind::Str { .. } => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a map",
        }
    }
}

/// YAML 1.2 core-schema booleans.
pub(crate) fn bool_value(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

enum Frame {
    Seq {
        line: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        entries: Vec<(String, usize, Node)>,
        key: Option<(String, usize)>,
    },
}

/// Parses the frontmatter YAML into a tree. An empty document is an empty map.
pub(crate) fn parse(path: &Path, yaml: &str, line_offset: usize) -> Result<Node, ManifestError> {
    let err = |line: usize, message: String| ManifestError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut parser = Parser::new_from_str(yaml);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    loop {
        let (event, marker) = parser.next_token().map_err(|e| {
            err(
                e.marker().line() + line_offset,
                format!("invalid YAML: {}", e.info()),
            )
        })?;
        let line = marker.line() + line_offset;
        let done = match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => continue,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(err(
                        line,
                        "only one YAML document is allowed in the frontmatter".into(),
                    ));
                }
                continue;
            }
            Event::Alias(_) => {
                return Err(err(
                    line,
                    "YAML aliases (`*name`) are not supported in manifests".into(),
                ));
            }
            Event::Scalar(text, style, _, _) => {
                let kind = if style == TScalarStyle::Plain && is_null(&text) {
                    Kind::Null
                } else {
                    Kind::Str {
                        text,
                        plain: style == TScalarStyle::Plain,
                    }
                };
                Node { line, kind }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(line, format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        line,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        line,
                        entries: Vec::new(),
                        key: None,
                    }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { line, items }) => Node {
                    line,
                    kind: Kind::Seq(items),
                },
                Some(Frame::Map { line, entries, .. }) => Node {
                    line,
                    kind: Kind::Map(entries),
                },
                None => return Err(err(line, "unbalanced YAML structure".into())),
            },
        };
        match stack.last_mut() {
            None => {
                if root.is_some() {
                    return Err(err(
                        line,
                        "only one YAML document is allowed in the frontmatter".into(),
                    ));
                }
                root = Some(done);
            }
            Some(Frame::Seq { items, .. }) => items.push(done),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    let Kind::Str { text, .. } = done.kind else {
                        return Err(err(
                            done.line,
                            format!("map keys must be plain names, found {}", done.describe()),
                        ));
                    };
                    if entries.iter().any(|(k, _, _)| *k == text) {
                        return Err(err(done.line, format!("duplicate key `{text}`")));
                    }
                    *key = Some((text, done.line));
                }
                Some((k, kline)) => entries.push((k, kline, done)),
            },
        }
    }
    Ok(match root {
        None
        | Some(Node {
            kind: Kind::Null, ..
        }) => Node {
            line: line_offset + 1,
            kind: Kind::Map(Vec::new()),
        },
        Some(node) => node,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> Result<Node, ManifestError> {
        parse(Path::new("t.md"), yaml, 1)
    }

    fn map(node: &Node) -> &[(String, usize, Node)] {
        match &node.kind {
            Kind::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn split_finds_yaml_and_body() {
        let s = split_frontmatter(Path::new("a.md"), "---\na: 1\n---\n\nHello\n").unwrap();
        assert_eq!(s.yaml, "a: 1\n");
        assert_eq!(s.body, "\nHello\n");
        let s = split_frontmatter(Path::new("a.md"), "\u{feff}---\r\n---\r\n").unwrap();
        assert_eq!(s.yaml, "");
        assert_eq!(s.body, "");
    }

    #[test]
    fn split_errors() {
        let e = split_frontmatter(Path::new("a.md"), "a: 1\n").unwrap_err();
        assert!(e.to_string().contains("missing frontmatter"), "{e}");
        let e = split_frontmatter(Path::new("a.md"), "---\na: 1\n").unwrap_err();
        assert!(e.to_string().contains("unterminated"), "{e}");
        assert!(split_frontmatter(Path::new("a.md"), "").is_err());
    }

    #[test]
    fn lines_are_file_lines() {
        let t = tree("a: x\n\nb:\n  - 1\n").unwrap();
        let m = map(&t);
        assert_eq!(m[0].1, 2);
        assert_eq!(m[1].1, 4);
        match &m[1].2.kind {
            Kind::Seq(items) => assert_eq!(items[0].line, 5),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scalars_keep_style() {
        let t = tree("a: 'x'\nb: y\nc:\nd: \"~\"\ne: ~\n").unwrap();
        let m = map(&t);
        assert_eq!(
            m[0].2.kind,
            Kind::Str {
                text: "x".into(),
                plain: false
            }
        );
        assert_eq!(
            m[1].2.kind,
            Kind::Str {
                text: "y".into(),
                plain: true
            }
        );
        assert_eq!(m[2].2.kind, Kind::Null);
        assert!(matches!(m[3].2.kind, Kind::Str { plain: false, .. }));
        assert_eq!(m[4].2.kind, Kind::Null);
    }

    #[test]
    fn flow_collections() {
        let t = tree("a: [x, y]\nb: {c: d}\n").unwrap();
        let m = map(&t);
        assert!(matches!(&m[0].2.kind, Kind::Seq(v) if v.len() == 2));
        assert!(matches!(&m[1].2.kind, Kind::Map(v) if v[0].0 == "c"));
    }

    #[test]
    fn empty_document_is_empty_map() {
        assert_eq!(map(&tree("").unwrap()).len(), 0);
        assert_eq!(map(&tree("# only a comment\n").unwrap()).len(), 0);
    }

    #[test]
    fn refuses_duplicates_aliases_and_bad_syntax() {
        let e = tree("a: 1\na: 2\n").unwrap_err().to_string();
        assert!(
            e.contains("duplicate key `a`") && e.contains("t.md:3"),
            "{e}"
        );
        let e = tree("a: &x 1\nb: *x\n").unwrap_err().to_string();
        assert!(e.contains("aliases"), "{e}");
        let e = tree("a: [1, 2\n").unwrap_err().to_string();
        assert!(e.contains("invalid YAML"), "{e}");
        let e = tree("{[a]: 1}\n").unwrap_err().to_string();
        assert!(e.contains("map keys"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
        let e = tree(&deep).unwrap_err().to_string();
        assert!(e.contains("nesting") || e.contains("recursion"), "{e}");
    }
}
