//! An input's name as one file-name component (its spool directory, its
//! framework log file, its launch-mode socket). One encoding for all, and
//! collision-free: two different names never share a spool or a log.
//!
//! ASCII letters, digits, `-`, `_` and `.` are kept, so the usual names keep
//! the original's file names (`_datakit_pythond_framework_some-inputs_.log`);
//! every other byte, `%` included, becomes `%XX`. A name made only of dots
//! (`.`, `..`) is encoded whole, so it can never name a parent directory.
//!
//! A file name holds at most 255 bytes, and a non-ASCII name triples when
//! encoded: an encoding longer than [`MAX_COMPONENT`] bytes is cut (never
//! inside a `%XX`) and ends with `~` and 32 hex digits of a 128-bit FNV-1a
//! hash of the whole name. `~` is itself encoded (`%7E`) in every name that
//! is not cut, so a cut name never equals an uncut one; two cut names are
//! the same only if their first ~56 bytes and their 128-bit hashes are, which
//! in practice means the same name. The hash is fixed (not std's hasher,
//! which may change between Rust versions): the same name finds the same
//! spool after an upgrade.

/// The longest component [`file_component`] returns, leaving room below the
/// 255-byte file-name limit for what is put around it
/// (`_datakit_pythond_framework_` … `_.log` is 32 bytes).
pub const MAX_COMPONENT: usize = 200;

/// The length of the suffix a cut component ends with (`~` and 32 hex digits).
pub const HASH_SUFFIX: usize = 33;

/// `name` as a single, safe, injective file-name component of at most
/// [`MAX_COMPONENT`] bytes.
pub fn file_component(name: &str) -> String {
    file_component_within(name, MAX_COMPONENT)
}

/// [`file_component`] in at most `max` bytes (at least [`HASH_SUFFIX`]),
/// where less room is left than a file name has: a Unix socket's whole path
/// holds 107 bytes. Cut the same way, so still collision-free.
pub fn file_component_within(name: &str, max: usize) -> String {
    let max = max.clamp(HASH_SUFFIX, MAX_COMPONENT);
    let only_dots = !name.is_empty() && name.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        let keep = (b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && !(only_dots && b == b'.');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    if out.len() > max {
        let hash = format!("~{:032x}", fnv1a_128(name.as_bytes()));
        let mut cut = max - hash.len();
        // Not inside an escape: a `%` among the last two bytes kept starts one.
        let from = cut.saturating_sub(2);
        if let Some(p) = out[from..cut].rfind('%') {
            cut = from + p;
        }
        out.truncate(cut);
        out.push_str(&hash);
    }
    out
}

/// 128-bit FNV-1a: small, fixed for ever, good enough against accidental
/// collisions (not an adversary's: names come from the operator's config).
fn fnv1a_128(data: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    data.iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usual_names_are_kept_as_they_are() {
        assert_eq!(file_component("some-python-inputs"), "some-python-inputs");
        assert_eq!(file_component("my_input.v2"), "my_input.v2");
    }

    #[test]
    fn names_that_a_lossy_sanitizer_would_merge_stay_apart() {
        let names = [
            "a b", "a_b", "a%20b", "a/b", "a\\b", "a:b", "数据", "..", ".", "a..b", "a~b",
        ];
        let encoded: std::collections::HashSet<String> =
            names.iter().map(|n| file_component(n)).collect();
        assert_eq!(encoded.len(), names.len(), "{encoded:?}");
    }

    #[test]
    fn the_result_is_one_component_that_cannot_climb() {
        for n in ["..", ".", "../etc", "a/../b", "/abs", "x\0y"] {
            let e = file_component(n);
            assert!(!e.contains('/') && !e.contains('\0'), "{n:?} -> {e:?}");
            assert!(e != "." && e != "..", "{n:?} -> {e:?}");
        }
        assert_eq!(file_component(".."), "%2E%2E");
        assert_eq!(file_component("a b"), "a%20b");
        assert_eq!(file_component("a%20b"), "a%2520b");
    }

    #[test]
    fn fnv1a_128_matches_its_published_test_vectors() {
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    #[test]
    fn a_long_non_ascii_name_fits_in_a_file_name_and_stays_apart() {
        // 100 CJK characters: 300 bytes of UTF-8, 900 encoded.
        let long = "数".repeat(100);
        let other = format!("{}据", "数".repeat(99));
        let (a, b) = (file_component(&long), file_component(&other));
        assert!(a.len() <= MAX_COMPONENT, "{} bytes", a.len());
        assert_ne!(a, b, "names differing only at the end stay apart");
        assert_eq!(a, file_component(&long), "the same name, the same file");
        // The cut never splits an escape: what precedes the hash is whole.
        let kept = a.split('~').next().unwrap();
        assert!(kept.len() % 3 == 0 && kept.starts_with("%E6%95%B0"), "{a}");
        // Every length around the bound, ASCII and not, fits whole escapes.
        for n in 60..80 {
            for name in [
                "é".repeat(n),
                format!("x{}", "é".repeat(n)),
                "x".repeat(n * 3),
            ] {
                let e = file_component(&name);
                assert!(e.len() <= MAX_COMPONENT, "{name:?} -> {} bytes", e.len());
                let head = e.rsplit_once('~').map_or(e.as_str(), |(h, _)| h);
                assert!(
                    !head.ends_with('%') && !head[head.len().saturating_sub(2)..].starts_with('%'),
                    "{e}"
                );
            }
        }
        // And a directory of that name can be created (the spool's; the log
        // file's name is checked in `logs`).
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(&a)).unwrap();
    }

    #[test]
    fn a_smaller_room_is_kept_and_stays_collision_free() {
        for room in [HASH_SUFFIX, HASH_SUFFIX + 1, 50, 61] {
            let a = file_component_within(&"数".repeat(40), room);
            let b = file_component_within(&format!("{}据", "数".repeat(39)), room);
            assert!(a.len() <= room && b.len() <= room, "{room}: {a} {b}");
            assert_ne!(a, b, "{room}");
            assert!(!a
                .trim_end_matches(|c: char| c.is_ascii_hexdigit())
                .ends_with('%'));
        }
        assert_eq!(file_component_within("short", 40), "short");
        // Less room than the hash needs: the hash alone.
        assert_eq!(file_component_within(&"x".repeat(80), 5).len(), HASH_SUFFIX);
    }

    #[test]
    fn a_name_just_at_the_bound_is_not_cut() {
        let name = "n".repeat(MAX_COMPONENT);
        assert_eq!(file_component(&name), name);
        let longer = "n".repeat(MAX_COMPONENT + 1);
        let e = file_component(&longer);
        assert!(e.len() <= MAX_COMPONENT && e.contains('~'), "{e}");
    }
}
