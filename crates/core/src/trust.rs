//! Whether a file may be trusted to run with pythond's privileges: the
//! check trusted daemons make before acting on a file (cron ignores crontabs
//! writable by group or others, OpenSSH's StrictModes refuses keys in
//! writable folders, sudo refuses a sudoers file writable by others).
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

use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

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
        group_private: meta.mode() & 0o020 != 0 && private_group(meta.uid(), meta.gid()),
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

/// The user's name for messages: `root`, `nobody (uid 65534)`, `uid 1234`.
pub fn user_name(uid: u32) -> String {
    match (lookup_user(uid), uid) {
        (Some(name), 0) => name,
        (Some(name), _) => format!("{name} (uid {uid})"),
        (None, _) => format!("uid {uid}"),
    }
}

fn lookup_user(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of
    // the strings it holds.
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut res) };
    if rc == 0 && !res.is_null() && !pw.pw_name.is_null() {
        // SAFETY: getpwuid_r succeeded: pw_name is a NUL-terminated string in `buf`.
        let name = unsafe { CStr::from_ptr(pw.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
    None
}

/// Whether `gid` is the private group of user `uid`: the user's primary
/// group, listing no other member, and nobody else's primary group.
pub fn private_group(uid: u32, gid: u32) -> bool {
    let Some((name, primary)) = lookup_user_entry(uid) else {
        return false;
    };
    if primary != gid {
        return false;
    }
    let Some(members) = group_members(gid) else {
        return false;
    };
    if members.iter().any(|m| *m != name) {
        return false;
    }
    // No other account has it as its primary group.
    let others = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    !others.lines().any(|l| {
        let f: Vec<&str> = l.split(':').collect();
        f.len() > 3 && f[0] != name && f[3].parse::<u32>().ok() == Some(gid)
    })
}

fn lookup_user_entry(uid: u32) -> Option<(String, u32)> {
    let mut buf = vec![0u8; 4096];
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of
    // the strings it holds.
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut res) };
    if rc == 0 && !res.is_null() && !pw.pw_name.is_null() {
        // SAFETY: getpwuid_r succeeded: pw_name is a NUL-terminated string in `buf`.
        let name = unsafe { CStr::from_ptr(pw.pw_name) };
        return Some((name.to_string_lossy().into_owned(), pw.pw_gid));
    }
    None
}

/// The member names listed for `gid` (not counting users whose primary
/// group it is).
fn group_members(gid: u32) -> Option<Vec<String>> {
    let mut buf = vec![0u8; 16 << 10];
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `lookup_user_entry`.
    let rc =
        unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut res) };
    if rc != 0 || res.is_null() {
        return None;
    }
    let mut out = Vec::new();
    let mut p = gr.gr_mem;
    // SAFETY: gr_mem is a NULL-terminated array of NUL-terminated strings in `buf`.
    unsafe {
        while !p.is_null() && !(*p).is_null() {
            out.push(CStr::from_ptr(*p).to_string_lossy().into_owned());
            p = p.add(1);
        }
    }
    Some(out)
}

/// The group's name, else the gid.
pub fn group_name(gid: u32) -> String {
    let mut buf = vec![0u8; 4096];
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `user_name`.
    let rc =
        unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut res) };
    if rc == 0 && !res.is_null() && !gr.gr_name.is_null() {
        // SAFETY: getgrgid_r succeeded.
        let name = unsafe { CStr::from_ptr(gr.gr_name) };
        return name.to_string_lossy().into_owned();
    }
    format!("gid {gid}")
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
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    use super::testing::share_group;

    #[test]
    fn owner_only_writable_paths_pass() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("a.py");
        std::fs::write(&f, "").unwrap();
        chmod(&f, 0o644);
        chmod(t.path(), 0o755);
        check(&f).unwrap();
        check(t.path()).unwrap();
    }

    #[test]
    fn a_world_writable_file_names_its_mode_and_the_chmod() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("a.py");
        std::fs::write(&f, "").unwrap();
        chmod(&f, 0o666);
        if !share_group(&f) {
            return;
        }
        let e = check(&f).unwrap_err().to_string();
        let me = user_name(unsafe { libc::geteuid() });
        assert!(
            e.starts_with(&format!(
                "file {} is writable by group {} and writable by others (owner {me}, ",
                f.display(),
                group_name(std::fs::metadata(&f).unwrap().gid())
            )),
            "{e}"
        );
        assert!(e.contains("mode 0666 -rw-rw-rw-"), "{e}");
        assert!(
            e.ends_with(&format!("fix: chmod go-w {}", f.display())),
            "{e}"
        );
    }

    #[test]
    fn only_the_bits_that_are_set_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("a.py");
        std::fs::write(&f, "").unwrap();
        chmod(&f, 0o646);
        let e = check(&f).unwrap_err().to_string();
        assert!(e.contains(" is writable by others (owner "), "{e}");
        assert!(
            e.ends_with(&format!("fix: chmod o-w {}", f.display())),
            "{e}"
        );
        chmod(&f, 0o664);
        if !share_group(&f) {
            return;
        }
        let e = check(&f).unwrap_err().to_string();
        assert!(
            e.ends_with(&format!("fix: chmod g-w {}", f.display())),
            "{e}"
        );
    }

    #[test]
    fn a_file_of_another_user_names_its_owner_and_the_chown() {
        if unsafe { libc::geteuid() } != 0 {
            return; // chown to another user needs root (as the e2e tests run)
        }
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("a.py");
        std::fs::write(&f, "").unwrap();
        chmod(&f, 0o644);
        std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
        let e = check(&f).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                " is owned by {}, not by root (the user pythond runs as) (owner ",
                user_name(65534)
            )),
            "{e}"
        );
        assert!(
            e.ends_with(&format!("fix: chown root {}", f.display())),
            "{e}"
        );
    }

    #[test]
    fn group_write_is_harmless_only_for_the_owners_private_group() {
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("shared.py");
        std::fs::write(&f, "").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).unwrap();
        let mine = std::fs::metadata(&f).unwrap().gid();
        if private_group(me, mine) {
            check(&f).expect("group-writable by the owner's private group");
        }
        if me == 0 {
            // nobody's primary group (nogroup) is shared by several accounts.
            let nogroup = 65534;
            std::os::unix::fs::chown(&f, Some(0), Some(nogroup)).unwrap();
            assert!(!private_group(0, nogroup));
            let e = check(&f).unwrap_err().to_string();
            assert!(e.contains("writable by group"), "{e}");
        }
    }

    #[test]
    fn a_sticky_world_writable_folder_is_not_enough() {
        let t = tempfile::tempdir().unwrap();
        chmod(t.path(), 0o1777);
        if !share_group(t.path()) {
            return;
        }
        let e = check(t.path()).unwrap_err().to_string();
        assert!(e.contains("mode 1777 drwxrwxrwt"), "{e}");
        assert!(e.contains("writable by group") && e.contains("and writable by others"));
        assert!(
            e.ends_with(&format!("chmod go-w {}", t.path().display())),
            "{e}"
        );
    }

    /// A tree under a trusted temp dir (see [`testing::trusted_tempdir`]):
    /// `dirs` folders and `files` (empty) below it.
    fn trusted_tree(dirs: &[&str], files: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let t = super::testing::trusted_tempdir();
        let base = t.path().canonicalize().unwrap();
        for d in dirs {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        for f in files {
            std::fs::write(base.join(f), "").unwrap();
        }
        (t, base)
    }

    fn set(v: Vec<PathBuf>) -> std::collections::BTreeSet<PathBuf> {
        let n = v.len();
        let s: std::collections::BTreeSet<PathBuf> = v.into_iter().collect();
        assert_eq!(s.len(), n, "no path twice");
        s
    }

    fn up_to_root(p: &Path) -> Vec<PathBuf> {
        p.ancestors().map(Path::to_owned).collect()
    }

    #[test]
    fn without_symlinks_guarded_paths_stop_at_the_anchor() {
        let (_t, b) = trusted_tree(&["python.d/s/sub"], &["python.d/s/sub/x.py"]);
        let pd = b.join("python.d");
        assert_eq!(
            set(guarded_paths(&pd.join("s/sub/x.py"), &pd)),
            set(vec![
                pd.clone(),
                pd.join("s"),
                pd.join("s/sub"),
                pd.join("s/sub/x.py")
            ])
        );
    }

    #[test]
    fn a_symlinked_folder_guards_its_target_and_every_folder_above_it() {
        let (_t, b) = trusted_tree(&["python.d", "x/outside/team"], &["x/outside/team/a.py"]);
        let pd = b.join("python.d");
        std::os::unix::fs::symlink(b.join("x/outside/team"), pd.join("team")).unwrap();
        let mut want = vec![pd.clone()];
        want.extend(up_to_root(&b.join("x/outside/team/a.py")));
        assert_eq!(set(guarded_paths(&pd.join("team/a.py"), &pd)), set(want));
        // Whoever can write x/outside could swap team/: refused by `check`.
        assert!(guarded_paths(&pd.join("team/a.py"), &pd).contains(&b.join("x/outside")));
        assert!(guarded_paths(&pd.join("team/a.py"), &pd).contains(&PathBuf::from("/")));
    }

    #[test]
    fn a_symlinked_file_guards_its_target_and_every_folder_above_it() {
        let (_t, b) = trusted_tree(&["python.d/s", "lib/deep"], &["lib/deep/z.py"]);
        let pd = b.join("python.d");
        std::os::unix::fs::symlink(b.join("lib/deep/z.py"), pd.join("s/z.py")).unwrap();
        let mut want = vec![pd.clone(), pd.join("s")];
        want.extend(up_to_root(&b.join("lib/deep/z.py")));
        assert_eq!(set(guarded_paths(&pd.join("s/z.py"), &pd)), set(want));
    }

    #[test]
    fn a_symlink_that_stays_below_the_anchor_is_guarded_up_to_the_anchor() {
        let (_t, b) = trusted_tree(&["python.d/s", "python.d/lib"], &["python.d/lib/real.py"]);
        let pd = b.join("python.d");
        std::os::unix::fs::symlink(pd.join("lib/real.py"), pd.join("s/alias.py")).unwrap();
        assert_eq!(
            set(guarded_paths(&pd.join("s/alias.py"), &pd)),
            set(vec![
                pd.clone(),
                pd.join("s"),
                pd.join("lib"),
                pd.join("lib/real.py")
            ])
        );
    }

    #[test]
    fn a_dotdot_out_of_the_anchor_is_guarded_up_to_the_root() {
        let (_t, b) = trusted_tree(&["python.d", "sib"], &["sib/a.py"]);
        let pd = b.join("python.d");
        let mut want = vec![pd.clone()];
        want.extend(up_to_root(&b.join("sib/a.py")));
        assert_eq!(set(guarded_paths(&pd.join("../sib/a.py"), &pd)), set(want));
    }

    #[test]
    fn a_symlinked_anchor_is_guarded_up_to_the_root_but_not_a_folder_above_it() {
        let (_t, b) = trusted_tree(&["real/scripts", "elsewhere"], &["real/scripts/a.py"]);
        std::os::unix::fs::symlink(b.join("real/scripts"), b.join("elsewhere/scripts")).unwrap();
        let linked = b.join("elsewhere/scripts");
        assert_eq!(
            set(guarded_paths(&linked.join("a.py"), &linked)),
            set(up_to_root(&b.join("real/scripts/a.py")))
        );
        // A symlink above the anchor (the administrator's): not followed up.
        std::os::unix::fs::symlink(b.join("real"), b.join("above")).unwrap();
        let anchor = b.join("above/scripts");
        assert_eq!(
            set(guarded_paths(&anchor.join("a.py"), &anchor)),
            set(vec![b.join("real/scripts"), b.join("real/scripts/a.py")])
        );
    }

    #[test]
    fn a_path_that_does_not_exist_is_kept_for_check_to_report() {
        let (_t, b) = trusted_tree(&["python.d"], &[]);
        let pd = b.join("python.d");
        let got = guarded_paths(&pd.join("gone.py"), &pd);
        assert_eq!(got, vec![pd.clone(), pd.join("gone.py")]);
        let e = check_all(&got);
        assert_eq!(e.len(), 1);
        assert!(e[0]
            .to_string()
            .starts_with(&format!("cannot check {}: ", pd.join("gone.py").display())));
    }

    #[test]
    fn commands_quote_odd_paths() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(shell_quote("/usr/local/datakit"), "/usr/local/datakit");
    }
}
