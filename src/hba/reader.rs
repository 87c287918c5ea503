//! pg_hba.conf as PostgreSQL's own reader sees it (`tokenize_auth_file`
//! and `next_token` in the server's `hba.c`, PostgreSQL 14 to 16), so that
//! the provider parses the bytes it writes exactly as the server will.
//!
//! The reader works on bytes, not characters:
//! - a line is read up to `\n`; a NUL byte ends what the reader keeps of
//!   it, and what follows the next `\n` is joined on as if the line went on;
//! - trailing `\r` and `\n` are stripped, then a line ending in `\` is
//!   joined with the next one (the record keeps the first line's number);
//! - fields are separated by blanks (space, tab, `\r`: no other white
//!   space), items within a field by commas; double quotes group, `""`
//!   inside quotes is one literal quote, and quotes may open anywhere in a
//!   token; an unquoted `#` ends the record;
//! - a token of 256 bytes or more is an error (PostgreSQL 15 and earlier
//!   read tokens into a fixed buffer).

/// One item of a field, as the server keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    /// The token began with a double quote: keywords (`all`, `+group`,
    /// `@file`, ...) lose their meaning.
    pub quoted: bool,
}

/// A record: the fields of one logical line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based number of the line the record starts on, as the server
    /// counts lines.
    pub line_number: usize,
    /// Each field's comma-separated tokens.
    pub fields: Vec<Vec<Token>>,
    /// 0-based index of the record's first physical line (split at `\n`);
    /// differs from `line_number - 1` after a line joined at a NUL byte.
    pub first_line: usize,
    /// How many physical lines the record spans.
    pub span: usize,
    /// The text after an unquoted `#`, which the server discards.
    pub comment: Option<String>,
    /// Why the server refuses the line, when it does at this stage.
    pub error: Option<String>,
}

/// The longest token PostgreSQL 15 and earlier accept, in bytes.
pub const MAX_TOKEN_BYTES: usize = 255;

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

/// The records of a file, with their line numbers; lines holding nothing
/// but blanks and a comment are left out, as the server leaves them out.
pub fn records(bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut line_number = 1;
    let mut physical = 0;
    while pos < bytes.len() {
        let (line, continuations, next) = logical_line(bytes, pos);
        let newlines = bytes[pos..next].iter().filter(|&&b| b == b'\n').count();
        let span = if bytes[..next].ends_with(b"\n") {
            newlines
        } else {
            newlines + 1
        };
        pos = next;
        let mut rec = tokenize(&line);
        if !rec.fields.is_empty() || rec.error.is_some() {
            rec.line_number = line_number;
            rec.first_line = physical;
            rec.span = span;
            out.push(rec);
        }
        physical += span;
        line_number += continuations + 1;
    }
    out
}

/// Reads one logical line from `pos`: returns its bytes, how many backslash
/// continuations it took, and where the next line starts.
fn logical_line(bytes: &[u8], mut pos: usize) -> (Vec<u8>, usize, usize) {
    let mut buf: Vec<u8> = Vec::new();
    let mut continuations = 0;
    let mut last_backslash_len = 0;
    loop {
        // pg_get_line_append: fgets up to a newline, but strlen() stops at
        // a NUL, so the rest of that physical line is lost and reading goes
        // on with the next one.
        // It returns whether it got a line: one that ended (at a newline or
        // at the end of the file), or at the end of the file whatever was
        // kept of a line a NUL cut.
        let before = buf.len();
        let mut got_line = false;
        while pos < bytes.len() {
            let (kept, next, cut) = crate::lines::c_line(bytes, pos);
            buf.extend_from_slice(kept);
            pos = next;
            if !cut {
                got_line = true;
                break;
            }
        }
        let got_line = got_line || buf.len() > before;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        if got_line && buf.len() > last_backslash_len && buf.last() == Some(&b'\\') {
            buf.pop();
            last_backslash_len = buf.len();
            continuations += 1;
            if pos < bytes.len() {
                continue;
            }
        }
        return (buf, continuations, pos);
    }
}

fn tokenize(line: &[u8]) -> Record {
    let mut rec = Record {
        line_number: 0,
        first_line: 0,
        span: 1,
        fields: Vec::new(),
        comment: None,
        error: None,
    };
    let mut p = 0;
    while p < line.len() && rec.error.is_none() {
        let mut field = Vec::new();
        while let Some((token, comma)) = next_token(line, &mut p, &mut rec) {
            field.push(token);
            if !comma || rec.error.is_some() {
                break;
            }
        }
        if !field.is_empty() {
            rec.fields.push(field);
        }
    }
    rec
}

/// One token from `line[*p..]` and whether a comma ended it; `None` at the
/// end of the line or at a comment.
fn next_token(line: &[u8], p: &mut usize, rec: &mut Record) -> Option<(Token, bool)> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    while at(*p) != 0 && (is_blank(at(*p)) || at(*p) == b',') {
        *p += 1;
    }
    let mut buf: Vec<u8> = Vec::new();
    let (mut in_quote, mut was_quote, mut saw_quote) = (false, false, false);
    let mut initial_quote = false;
    let mut comma = false;
    while at(*p) != 0 && (!is_blank(at(*p)) || in_quote) {
        let c = at(*p);
        if buf.len() >= MAX_TOKEN_BYTES {
            rec.error = Some("authentication file token too long".into());
            *p = line.len();
            return None;
        }
        if c == b'#' && !in_quote {
            let text = String::from_utf8_lossy(&line[*p + 1..]);
            let text = text.trim_matches(is_blank_char);
            rec.comment = (!text.is_empty()).then(|| text.to_string());
            *p = line.len();
            break;
        }
        if c == b',' && !in_quote {
            comma = true;
            *p += 1;
            break;
        }
        if c != b'"' || was_quote {
            buf.push(c);
        }
        was_quote = in_quote && c == b'"' && !was_quote;
        if c == b'"' {
            in_quote = !in_quote;
            saw_quote = true;
            if buf.is_empty() {
                initial_quote = true;
            }
        }
        *p += 1;
    }
    if !saw_quote && buf.is_empty() {
        return None;
    }
    Some((
        Token {
            text: String::from_utf8_lossy(&buf).into_owned(),
            quoted: initial_quote,
        },
        comma,
    ))
}

fn is_blank_char(c: char) -> bool {
    c.is_ascii() && is_blank(c as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(r: &Record) -> Vec<Vec<String>> {
        r.fields
            .iter()
            .map(|f| f.iter().map(|t| t.text.clone()).collect())
            .collect()
    }

    #[test]
    fn fields_items_quotes_and_comments() {
        let r = records(b"host \"my db\",x all 10.0.0.0/8 md5 # note\n");
        assert_eq!(
            texts(&r[0]),
            [
                vec!["host"],
                vec!["my db", "x"],
                vec!["all"],
                vec!["10.0.0.0/8"],
                vec!["md5"]
            ]
        );
        assert!(r[0].fields[1][0].quoted && !r[0].fields[2][0].quoted);
        assert_eq!(r[0].comment.as_deref(), Some("note"));
        // "" inside quotes is a quote; quotes may open inside a token
        let r = records(b"local \"a\"\"b\" x\"y z\" trust");
        assert_eq!(texts(&r[0])[1], ["a\"b"]);
        assert_eq!(texts(&r[0])[2], ["xy z"]);
        assert!(!r[0].fields[2][0].quoted);
    }

    #[test]
    fn a_trailing_backslash_swallows_the_next_line() {
        let r = records(b"local all a trust # note\\\nlocal all b reject\nlocal all c trust\n");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].line_number, 1);
        assert_eq!(r[1].line_number, 3);
        assert_eq!((r[0].span, r[1].first_line, r[1].span), (2, 2, 1));
        assert_eq!(texts(&r[1])[2], ["c"]);
        // A last line without its newline still spans one line (two when
        // joined).
        let r = records(b"local all a trust\nlocal all b \\\ntrust");
        assert_eq!((r[1].first_line, r[1].span), (1, 2));
        let r = records(b"local all a trust");
        assert_eq!(r[0].span, 1);
    }

    #[test]
    fn a_backslash_continues_a_line_once() {
        // The backslash left after one continuation, followed by an empty
        // line, does not continue again (PostgreSQL compares with where
        // the last continuation ended).
        let r = records(b"local all a trust\\\\\n\nlocal all b trust\n");
        assert_eq!(r.len(), 2);
        assert_eq!(texts(&r[0])[3], ["trust\\"]);
        // At the end of the file, a line a NUL cut still ends in a
        // continuation that is dropped, as fgets returned what it kept.
        let r = records(b"local all a trust \\\0junk");
        assert_eq!(texts(&r[0]).len(), 4, "{:?}", texts(&r[0]));
    }

    #[test]
    fn a_nul_cuts_the_line_and_joins_the_next() {
        let r = records(b"local all a trust # x\0y\nlocal all b reject\nlocal all c trust\n");
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[1].line_number, 2,
            "the server counts the joined line once"
        );
        assert_eq!((r[0].first_line, r[0].span, r[1].first_line), (0, 2, 2));
        assert_eq!(texts(&r[1])[2], ["c"]);
    }

    #[test]
    fn only_space_tab_and_cr_separate_fields() {
        let r = records("local all a\u{a0}b trust\x0b".as_bytes());
        assert_eq!(texts(&r[0])[2], ["a\u{a0}b"]);
        assert_eq!(texts(&r[0])[3], ["trust\x0b"]);
        let r = records(b"local all\ra trust\r\n");
        assert_eq!(texts(&r[0])[2], ["a"]);
    }

    #[test]
    fn long_tokens_are_errors() {
        let ok = format!("local all {} trust", "a".repeat(255));
        assert_eq!(records(ok.as_bytes())[0].error, None);
        let quoted = format!("local all \"{}\" trust", "a".repeat(255));
        assert!(records(quoted.as_bytes())[0].error.is_some());
        let long = format!("local all {} trust", "a".repeat(256));
        assert!(records(long.as_bytes())[0].error.is_some());
    }

    #[test]
    fn blank_and_comment_lines_are_not_records_but_count() {
        let r = records(b"# c\n\n  \t\nlocal all all trust");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].line_number, 4);
    }
}
