//! Pure text renderers: configuration blocks, files and scripts. Nothing here
//! touches a host, so everything is tested with snapshots and proptest.

pub mod cert;
pub mod pg;
pub mod scripts;
pub mod stack;

/// The first line of a block this project owns inside someone else's file.
pub const BEGIN: &str = "# KE2-BEGIN";
/// The last line of that block.
pub const END: &str = "# KE2-END";

/// Replaces the `# KE2-BEGIN`..`# KE2-END` block of `file` with `body` (the
/// markers are added around it), or appends the block when there is none.
/// Every byte outside the block is kept, so re-rendering is idempotent and
/// operators' own edits survive.
pub fn replace_block(file: &str, body: &str) -> String {
    let mut block = String::new();
    block.push_str(BEGIN);
    block.push('\n');
    block.push_str(body);
    if !body.is_empty() && !body.ends_with('\n') {
        block.push('\n');
    }
    block.push_str(END);
    block.push('\n');

    if let Some((start, end)) = find_block(file) {
        let mut out = String::with_capacity(file.len() + block.len());
        out.push_str(&file[..start]);
        out.push_str(&block);
        out.push_str(&file[end..]);
        out
    } else {
        let mut out = file.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&block);
        out
    }
}

/// Byte range of the block: from the start of the `BEGIN` line to just after
/// the newline ending the `END` line (or the end of the file).
fn find_block(file: &str) -> Option<(usize, usize)> {
    let start = line_start_of(file, BEGIN, 0)?;
    let end_line = line_start_of(file, END, start)?;
    let end = file[end_line..]
        .find('\n')
        .map_or(file.len(), |i| end_line + i + 1);
    Some((start, end))
}

/// Offset of the first line at or after `from` that is exactly `marker`.
fn line_start_of(file: &str, marker: &str, from: usize) -> Option<usize> {
    let mut pos = from;
    for line in file[from..].split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == marker {
            return Some(pos);
        }
        pos += line.len();
    }
    None
}

/// The body of the KE2 block, if the file has one.
pub fn block_body(file: &str) -> Option<&str> {
    let (start, end) = find_block(file)?;
    let inner = &file[start + BEGIN.len() + 1..end];
    let inner = inner.strip_suffix('\n').unwrap_or(inner);
    inner.strip_suffix(END)
}

/// Single-quotes a value for postgresql.conf / pgpool.conf syntax.
pub fn conf_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn appends_then_replaces() {
        let a = replace_block("x = 1\n", "y = 2\n");
        assert_eq!(a, "x = 1\n# KE2-BEGIN\ny = 2\n# KE2-END\n");
        let b = replace_block(&a, "y = 3");
        assert_eq!(b, "x = 1\n# KE2-BEGIN\ny = 3\n# KE2-END\n");
        assert_eq!(block_body(&b), Some("y = 3\n"));
        assert_eq!(
            replace_block("tail", "z"),
            "tail\n# KE2-BEGIN\nz\n# KE2-END\n"
        );
    }

    #[test]
    fn keeps_what_follows_the_block() {
        let f = "a\n# KE2-BEGIN\nold\n# KE2-END\nb\n";
        assert_eq!(
            replace_block(f, "new\n"),
            "a\n# KE2-BEGIN\nnew\n# KE2-END\nb\n"
        );
    }

    fn text() -> impl Strategy<Value = String> {
        // Lines that may look like markers but are not exactly them.
        proptest::collection::vec(
            prop_oneof![
                "[a-z =#_'0-9]{0,20}",
                Just("# KE2-BEGIN x".to_string()),
                Just(" # KE2-END".to_string()),
            ],
            0..8,
        )
        .prop_map(|l| l.join("\n"))
    }

    proptest! {
        // Rendering twice is rendering once.
        #[test]
        fn idempotent(file in text(), body in "[a-z =0-9\n]{0,40}") {
            let once = replace_block(&file, &body);
            prop_assert_eq!(replace_block(&once, &body), once);
        }

        // Everything outside the block is byte-identical after any number of
        // re-renders with different bodies.
        #[test]
        fn outside_bytes_unchanged(before in text(), after in text(), b1 in "[a-z =\n]{0,30}", b2 in "[a-z =\n]{0,30}") {
            let mut file = before.clone();
            if !file.is_empty() { file.push('\n'); }
            let with_block = replace_block(&file, &b1);
            let prefix_len = with_block.find(BEGIN).unwrap();
            let mut tail = after.clone();
            if !tail.is_empty() { tail.push('\n'); }
            let full = format!("{with_block}{tail}");
            let again = replace_block(&full, &b2);
            prop_assert_eq!(&again[..prefix_len], &full[..prefix_len]);
            prop_assert!(again.ends_with(&tail));
            prop_assert_eq!(block_body(&again).map(str::to_string), Some(if b2.is_empty() || b2.ends_with('\n') { b2.clone() } else { format!("{b2}\n") }));
        }
    }
}
