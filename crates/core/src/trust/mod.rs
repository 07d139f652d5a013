//! Whether a file may be trusted to run with pythond's privileges: the
//! check trusted daemons make before acting on a file (cron ignores crontabs
//! writable by group or others, OpenSSH's StrictModes refuses keys in
//! writable folders, sudo refuses a sudoers file writable by others).
//!
//! For users: README, "Security"; it is a deliberate difference from the
//! original (`docs/compat.md`).
//!
//! A path passes when it is owned by root or by the user pythond runs as and
//! is writable by neither its group nor others. A sticky folder (`/tmp`) is
//! not enough: anyone may still create a file in it. The file and every
//! folder from it up to its anchor are checked ([`guarded_paths`]): whoever
//! can write a folder can replace what is in it. Above the anchor as written
//! (python.d, an absolute `dirs` entry, the config folder) is the
//! administrator's business; but where a symlink or `..` leads out of the
//! anchor, the real path it leads to is checked with every folder above it
//! up to `/`, as OpenSSH's `secure_path` does.
//!
//! Not checked: ACLs, files the scripts import that discovery does not list
//! (covered by the folder checks only), and what the scripts import from
//! elsewhere (`site-packages` belongs to `cmd`'s Python and its
//! administrator).

mod accounts;

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

pub use accounts::{group_name, private_group, user_name};
use accounts::{lookup_user, private_group_in, Accounts, Nss};

/// A path that someone other than root and pythond's user can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    pub path: PathBuf,
    pub is_dir: bool,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o777` and the sticky/setuid bits).
    pub mode: u32,
    /// The user pythond runs as (effective uid).
    pub euid: u32,
    /// The group is the owner's private group: its write bit is harmless.
    pub group_private: bool,
}

impl Untrusted {
    fn foreign_owner(&self) -> bool {
        self.uid != 0 && self.uid != self.euid
    }

    fn group_writable(&self) -> bool {
        self.mode & 0o020 != 0 && !self.group_private
    }

    fn other_writable(&self) -> bool {
        self.mode & 0o002 != 0
    }

    /// The shell commands that make the path pass.
    pub fn fixes(&self) -> Vec<String> {
        let path = shell_quote(&self.path.to_string_lossy());
        let mut v = Vec::new();
        if self.foreign_owner() {
            let user = lookup_user(self.euid).unwrap_or_else(|| self.euid.to_string());
            v.push(format!("chown {user} {path}"));
        }
        let who = match (self.group_writable(), self.other_writable()) {
            (true, true) => "go-w",
            (true, false) => "g-w",
            (false, true) => "o-w",
            (false, false) => "",
        };
        if !who.is_empty() {
            v.push(format!("chmod {who} {path}"));
        }
        v
    }
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut why = Vec::new();
        if self.foreign_owner() {
            let allowed = if self.euid == 0 {
                "root (the user pythond runs as)".to_owned()
            } else {
                format!(
                    "root or {} (the user pythond runs as)",
                    user_name(self.euid)
                )
            };
            why.push(format!(
                "owned by {}, not by {allowed}",
                user_name(self.uid)
            ));
        }
        if self.group_writable() {
            why.push(format!("writable by group {}", group_name(self.gid)));
        }
        if self.other_writable() {
            why.push("writable by others".to_owned());
        }
        write!(
            f,
            "{} {} is {} (owner {}, group {}, mode {:04o} {}); fix: {}",
            if self.is_dir { "folder" } else { "file" },
            self.path.display(),
            why.join(" and "),
            user_name(self.uid),
            group_name(self.gid),
            self.mode & 0o7777,
            ls_mode(self.mode, self.is_dir),
            self.fixes().join(" && ")
        )
    }
}

/// Why a path could not be trusted.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{0}")]
    Untrusted(Box<Untrusted>),
    #[error("cannot check {}: {source}", path.display())]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Check one path (symlinks followed: pass real paths).
pub fn check(path: &Path) -> Result<(), TrustError> {
    check_with(&Nss, path)
}

/// [`check`] with the accounts of `accounts`.
fn check_with(accounts: &dyn Accounts, path: &Path) -> Result<(), TrustError> {
    let meta = std::fs::metadata(path).map_err(|source| TrustError::Stat {
        path: path.to_owned(),
        source,
    })?;
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let u = Untrusted {
        path: path.to_owned(),
        is_dir: meta.is_dir(),
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
        euid,
        group_private: meta.mode() & 0o020 != 0
            && private_group_in(accounts, meta.uid(), meta.gid()),
    };
    if u.foreign_owner() || u.group_writable() || u.other_writable() {
        Err(TrustError::Untrusted(Box::new(u)))
    } else {
        Ok(())
    }
}

/// Check every path, returning every problem found.
pub fn check_all<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Vec<TrustError> {
    paths.into_iter().filter_map(|p| check(p).err()).collect()
}

/// The paths whose owner and mode decide whether `path`, reached from
/// `anchor`, can be trusted, as real paths (symlinks and `..` resolved).
///
/// `anchor` is a folder the administrator named or pythond derives from
/// what they named (python.d, a git repo's python.d, an absolute `dirs`
/// entry, the folder of a config file); `path` is written below it. The
/// anchor and every step from it down to `path` are checked where they
/// really are, each with the folders above it up to the anchor: whoever can
/// write one of them can swap what is below. Where a step's real path is not
/// below the anchor's (a symlink or a `..` leading out of it, or the anchor
/// itself a symlink), it is checked with every folder above it up to `/`,
/// as OpenSSH's `secure_path` does: the administrator placed the link, not
/// what surrounds its target. The folders above the anchor as written are
/// the administrator's business and not checked.
pub fn guarded_paths(path: &Path, anchor: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut push = |p: &Path| {
        if !out.iter().any(|o| o == p) {
            out.push(p.to_owned());
        }
    };
    let Ok(real_anchor) = anchor.canonicalize() else {
        // Reported by `check` ("cannot check").
        push(anchor);
        return out;
    };
    push(&real_anchor);
    // The anchor itself a symlink (not a folder above it): its target.
    let linked = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_symlink());
    if linked(anchor) {
        real_anchor.ancestors().for_each(&mut push);
    }
    let Ok(below) = path.strip_prefix(anchor) else {
        // Not below the anchor: nothing vouches for its folders.
        match path.canonicalize() {
            Ok(real) => real.ancestors().for_each(&mut push),
            Err(_) => push(path),
        }
        return out;
    };
    let mut at = anchor.to_owned();
    for c in below.components() {
        match c {
            Component::Normal(_) | Component::ParentDir => at.push(c),
            _ => continue,
        }
        let Ok(real) = at.canonicalize() else {
            push(&at);
            break;
        };
        if real.starts_with(&real_anchor) {
            real.ancestors()
                .take_while(|a| a.starts_with(&real_anchor))
                .for_each(&mut push);
        } else {
            real.ancestors().for_each(&mut push);
        }
    }
    out
}

/// `rwxr-xr-x` style, with `d` for folders and the sticky bit as `t`/`T`.
fn ls_mode(mode: u32, is_dir: bool) -> String {
    let mut s = String::with_capacity(10);
    s.push(if is_dir { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    if mode & 0o1000 != 0 {
        let x = s.pop() == Some('x');
        s.push(if x { 't' } else { 'T' });
    }
    s
}

/// `s` as one shell word.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// For tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Give `p` a group other accounts share (as root: nobody's primary
    /// group), so that its group write bit counts. Whether its group is
    /// shared now (not as another user whose files have a private group).
    pub fn share_group(p: &Path) -> bool {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            let m = std::fs::metadata(p).unwrap();
            return !private_group(m.uid(), m.gid());
        }
        std::os::unix::fs::chown(p, None, Some(65534)).unwrap();
        true
    }

    /// A new temp dir in a folder whose every ancestor passes [`check`], for
    /// trees that a symlink or `..` leads out of (their folders are then
    /// checked up to `/`: not below the world-writable `/tmp`): beside the
    /// test binary (in the target dir), else in `$HOME`.
    pub fn trusted_tempdir() -> tempfile::TempDir {
        let candidates = [
            std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(Path::to_owned)),
            std::env::var_os("HOME").map(PathBuf::from),
        ];
        for c in candidates.into_iter().flatten() {
            let Ok(real) = c.canonicalize() else { continue };
            if real.ancestors().all(|a| check(a).is_ok()) {
                return tempfile::tempdir_in(&real).unwrap();
            }
        }
        panic!(
            "these tests need a folder that only root and this user can write, up to /: \
             neither the target dir nor $HOME is one"
        )
    }

    /// The chmod a file with group and other write bits needs.
    pub fn go_w(p: &Path) -> &'static str {
        if share_group(p) {
            "chmod go-w"
        } else {
            "chmod o-w"
        }
    }
}

#[cfg(test)]
mod tests;
