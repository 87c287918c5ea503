//! A text file kept as its lines, so that what the provider does not touch
//! is written back byte for byte; and the marked block a file's managed
//! part lives in. Shared by pg_hba.conf and passfile editing.

use std::collections::HashMap;
use std::hash::Hash;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Lines {
    pub lines: Vec<String>,
    /// Whether the text ended with a newline (an empty text counts as one).
    pub final_newline: bool,
}

impl Lines {
    pub fn parse(text: &str) -> Lines {
        let final_newline = text.ends_with('\n') || text.is_empty();
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines = if text.is_empty() {
            Vec::new()
        } else {
            body.split('\n').map(str::to_string).collect()
        };
        Lines {
            lines,
            final_newline,
        }
    }

    pub fn render(&self) -> String {
        let mut s = self.lines.join("\n");
        if self.final_newline && !self.lines.is_empty() {
            s.push('\n');
        }
        s
    }

    /// Indexes of the `begin` and `end` marker lines of the block.
    pub fn block(&self, begin: &str, end: &str) -> Option<(usize, usize)> {
        let b = self.lines.iter().position(|l| l.trim_end() == begin)?;
        let e = self.lines[b..].iter().position(|l| l.trim_end() == end)? + b;
        Some((b, e))
    }

    /// Removes the block when nothing but blank lines is left in it, so the
    /// file returns to what it was before the provider touched it.
    pub fn drop_block_if_empty(&mut self, begin: &str, end: &str) {
        if let Some((b, e)) = self.block(begin, end) {
            if self.lines[b + 1..e].iter().all(|l| l.trim().is_empty()) {
                self.lines.drain(b..=e);
            }
        }
    }

    /// Inserts the two markers at `at`; returns their indexes.
    pub fn insert_block(&mut self, at: usize, begin: &str, end: &str) -> (usize, usize) {
        self.lines.insert(at, end.to_string());
        self.lines.insert(at, begin.to_string());
        if self.lines.len() == 2 {
            self.final_newline = true;
        }
        (at, at + 1)
    }
}

/// Reads one line from `bytes` at `pos` the way C's `fgets` followed by
/// `strlen` does, which is how both PostgreSQL's configuration reader and
/// libpq's password file reader take their lines: everything up to and
/// including the next `\n`, except that a NUL byte ends what is kept (the
/// rest of that physical line is lost). Returns what is kept, where the next
/// line starts, and whether a NUL cut the line (then the reader, seeing no
/// newline, goes on appending the next physical line).
pub fn c_line(bytes: &[u8], pos: usize) -> (&[u8], usize, bool) {
    let end = bytes[pos..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| pos + i + 1);
    let chunk = &bytes[pos..end];
    match chunk.iter().position(|&b| b == 0) {
        Some(nul) => (&chunk[..nul], end, true),
        None => (chunk, end, false),
    }
}

/// Items by key, as the provider looks them up: an item inside the managed
/// block wins, otherwise the first in the file.
pub fn index_preferring_managed<K: Eq + Hash, T>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
    managed: impl Fn(&T) -> bool,
) -> HashMap<K, T> {
    let mut index: HashMap<K, T> = HashMap::new();
    for item in items {
        let k = key(&item);
        let keep_old = index
            .get(&k)
            .is_some_and(|old| managed(old) || !managed(&item));
        if !keep_old {
            index.insert(k, item);
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_it_parsed() {
        for text in ["", "a", "a\n", "a\r\nb", "\n\n"] {
            assert_eq!(Lines::parse(text).render(), text);
        }
    }

    #[test]
    fn a_managed_item_wins_over_others_with_its_key_else_the_first_does() {
        // (key, managed, name)
        let items = [
            ("a", false, "a first"),
            ("a", true, "a managed"),
            ("a", false, "a last"),
            ("b", false, "b first"),
            ("b", false, "b second"),
            ("c", true, "c managed"),
            ("c", false, "c after"),
        ];
        let index = index_preferring_managed(items, |i| i.0, |i| i.1);
        assert_eq!(index.len(), 3);
        assert_eq!(index["a"].2, "a managed");
        assert_eq!(index["b"].2, "b first");
        assert_eq!(index["c"].2, "c managed");
    }

    #[test]
    fn c_lines_end_at_newline_or_nul() {
        assert_eq!(c_line(b"ab\ncd", 0), (&b"ab\n"[..], 3, false));
        assert_eq!(c_line(b"ab\ncd", 3), (&b"cd"[..], 5, false));
        assert_eq!(c_line(b"a\0b\nc", 0), (&b"a"[..], 4, true));
    }

    #[test]
    fn an_emptied_block_goes_away() {
        let mut l = Lines::parse("x\n");
        let (b, _) = l.insert_block(0, "B", "E");
        l.lines.insert(b + 1, "entry".into());
        assert_eq!(l.render(), "B\nentry\nE\nx\n");
        l.lines.remove(b + 1);
        l.drop_block_if_empty("B", "E");
        assert_eq!(l.render(), "x\n");
    }
}
