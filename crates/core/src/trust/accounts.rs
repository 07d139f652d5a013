//! Who is who: names for messages, and whether a group is the owner's
//! private group (its write bit then harmless), all from NSS (`getpwuid_r`,
//! `getgrgid_r`, `getpwent`), so that LDAP or SSSD accounts count as much as
//! those of `/etc/passwd`.
//!
//! A group is private to a user when it is the user's primary group, lists
//! no other member, and is no other account's primary group. The last needs
//! every account, which NSS can list only when its passwd sources are local
//! (`files`, `systemd`): directory services often do not enumerate (SSSD by
//! default does not). When in doubt the group is shared: a group-writable
//! file is then refused, with the `chmod g-w` that fixes it.

use std::ffi::CStr;
use std::sync::Mutex;

/// Where accounts come from: NSS in pythond, a table in tests.
pub(crate) trait Accounts {
    /// The name and primary gid of `uid`.
    fn user(&self, uid: u32) -> Option<(String, u32)>;
    /// The member names listed for `gid` (not counting users whose primary
    /// group it is); `None`: no such group, or it cannot be read.
    fn members(&self, gid: u32) -> Option<Vec<String>>;
    /// Every account's name and primary gid; `None` when the sources cannot
    /// be relied on to list them all.
    fn everyone(&self) -> Option<Vec<(String, u32)>>;
}

/// Whether `gid` is the private group of user `uid` (see the module doc).
pub(crate) fn private_group_in(accounts: &dyn Accounts, uid: u32, gid: u32) -> bool {
    let Some((name, primary)) = accounts.user(uid) else {
        return false;
    };
    if primary != gid {
        return false;
    }
    match accounts.members(gid) {
        Some(members) if members.iter().all(|m| *m == name) => {}
        _ => return false,
    }
    let Some(everyone) = accounts.everyone() else {
        return false;
    };
    !everyone.iter().any(|(n, g)| *n != name && *g == gid)
}

/// The accounts NSS gives.
pub(crate) struct Nss;

impl Accounts for Nss {
    fn user(&self, uid: u32) -> Option<(String, u32)> {
        let mut buf = vec![0u8; 4096];
        // SAFETY: a zeroed passwd is a valid out-parameter.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf` outlives the use
        // of the strings it holds.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut res) };
        if rc == 0 && !res.is_null() && !pw.pw_name.is_null() {
            // SAFETY: getpwuid_r succeeded: pw_name is a NUL-terminated string in `buf`.
            let name = unsafe { CStr::from_ptr(pw.pw_name) };
            return Some((name.to_string_lossy().into_owned(), pw.pw_gid));
        }
        None
    }

    fn members(&self, gid: u32) -> Option<Vec<String>> {
        // A group past `with_group`'s largest buffer is None: shared.
        with_group(gid, |gr| {
            let mut out = Vec::new();
            let mut p = gr.gr_mem;
            // SAFETY: gr_mem is a NULL-terminated array of NUL-terminated
            // strings in the buffer, alive during the closure.
            unsafe {
                while !p.is_null() && !(*p).is_null() {
                    out.push(CStr::from_ptr(*p).to_string_lossy().into_owned());
                    p = p.add(1);
                }
            }
            out
        })
    }

    fn everyone(&self) -> Option<Vec<(String, u32)>> {
        let conf = std::fs::read_to_string("/etc/nsswitch.conf").ok();
        if !lists_every_account(conf.as_deref()) {
            return None;
        }
        // getpwent walks one cursor per process: one walk at a time.
        static WALK: Mutex<()> = Mutex::new(());
        let _walk = WALK.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        // SAFETY: setpwent/getpwent/endpwent under WALK; each entry is
        // copied out before the next call overwrites it.
        unsafe {
            libc::setpwent();
            loop {
                let pw = libc::getpwent();
                if pw.is_null() {
                    break;
                }
                if !(*pw).pw_name.is_null() {
                    let name = CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned();
                    out.push((name, (*pw).pw_gid));
                }
            }
            libc::endpwent();
        }
        Some(out)
    }
}

/// Whether enumerating NSS's passwd lists every account, given the text of
/// `/etc/nsswitch.conf` (`None`: there is none): only when every source of
/// its `passwd:` line is local. `compat` may pull in NIS; `sss`, `ldap`,
/// `nis`, `winbind` and the like need not enumerate. Without the file (or
/// the line) glibc's default depends on its version: not relied on. musl has
/// no NSS and reads `/etc/passwd` only.
pub(crate) fn lists_every_account(nsswitch: Option<&str>) -> bool {
    if cfg!(target_env = "musl") {
        return true;
    }
    let Some(text) = nsswitch else {
        return false;
    };
    let Some(sources) = text.lines().find_map(|l| {
        let l = l.split('#').next().unwrap_or("").trim();
        l.strip_prefix("passwd:")
    }) else {
        return false;
    };
    let mut sources = sources
        .split_whitespace()
        // Actions such as `[NOTFOUND=return]` are not sources.
        .filter(|s| !s.starts_with('['))
        .peekable();
    sources.peek().is_some() && sources.all(|s| matches!(s, "files" | "systemd"))
}

/// The user's name for messages: `root`, `nobody (uid 65534)`, `uid 1234`.
pub fn user_name(uid: u32) -> String {
    match (lookup_user(uid), uid) {
        (Some(name), 0) => name,
        (Some(name), _) => format!("{name} (uid {uid})"),
        (None, _) => format!("uid {uid}"),
    }
}

/// The user's name, if NSS knows it.
pub(crate) fn lookup_user(uid: u32) -> Option<String> {
    Nss.user(uid).map(|(name, _)| name)
}

/// Whether `gid` is the private group of user `uid`, by NSS.
pub fn private_group(uid: u32, gid: u32) -> bool {
    private_group_in(&Nss, uid, gid)
}

/// The group's name, else the gid.
pub fn group_name(gid: u32) -> String {
    with_group(gid, |gr| {
        // SAFETY: gr_name is NULL or a NUL-terminated string in the buffer,
        // alive during the closure.
        (!gr.gr_name.is_null()).then(|| {
            unsafe { CStr::from_ptr(gr.gr_name) }
                .to_string_lossy()
                .into_owned()
        })
    })
    .flatten()
    .unwrap_or_else(|| format!("gid {gid}"))
}

/// `f` of NSS's entry for group `gid`, read while the strings it points to
/// are alive; `None` if NSS has no such group or it fills more than 1 MiB
/// (the buffer starts at 4 KiB and grows while `getgrgid_r` says ERANGE: a
/// group with thousands of members).
fn with_group<T>(gid: u32, f: impl FnOnce(&libc::group) -> T) -> Option<T> {
    let mut len = 4 << 10;
    loop {
        let mut buf = vec![0u8; len];
        // SAFETY: a zeroed group is a valid out-parameter.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf` outlives `f`'s
        // use of the strings it holds.
        let rc =
            unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut res) };
        if rc == libc::ERANGE && len < 1 << 20 {
            len *= 4;
            continue;
        }
        if rc != 0 || res.is_null() {
            return None;
        }
        return Some(f(&gr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed account table: (name, uid, primary gid), group members, and
    /// whether the table is all there is.
    struct Table {
        users: Vec<(&'static str, u32, u32)>,
        groups: Vec<(u32, Vec<&'static str>)>,
        complete: bool,
    }

    impl Accounts for Table {
        fn user(&self, uid: u32) -> Option<(String, u32)> {
            self.users
                .iter()
                .find(|(_, u, _)| *u == uid)
                .map(|(n, _, g)| (n.to_string(), *g))
        }
        fn members(&self, gid: u32) -> Option<Vec<String>> {
            self.groups
                .iter()
                .find(|(g, _)| *g == gid)
                .map(|(_, m)| m.iter().map(|s| s.to_string()).collect())
        }
        fn everyone(&self) -> Option<Vec<(String, u32)>> {
            self.complete.then(|| {
                self.users
                    .iter()
                    .map(|(n, _, g)| (n.to_string(), *g))
                    .collect()
            })
        }
    }

    /// alice (1000) with her group 1000; bob (1001) with his group 1001.
    fn table() -> Table {
        Table {
            users: vec![("alice", 1000, 1000), ("bob", 1001, 1001)],
            groups: vec![(1000, vec![]), (1001, vec![]), (50, vec!["alice", "bob"])],
            complete: true,
        }
    }

    #[test]
    fn the_owners_primary_group_with_no_one_else_is_private() {
        assert!(private_group_in(&table(), 1000, 1000));
        let mut t = table();
        t.groups[0].1 = vec!["alice"];
        assert!(private_group_in(&t, 1000, 1000), "listing the owner alone");
    }

    #[test]
    fn a_group_with_another_member_is_shared() {
        let mut t = table();
        t.groups[0].1 = vec!["alice", "bob"];
        assert!(!private_group_in(&t, 1000, 1000));
    }

    #[test]
    fn a_group_that_is_another_accounts_primary_group_is_shared() {
        let mut t = table();
        // carol, from a directory, shares alice's gid as her primary group.
        t.users.push(("carol", 2000, 1000));
        assert!(!private_group_in(&t, 1000, 1000));
    }

    #[test]
    fn when_the_accounts_cannot_all_be_listed_the_group_is_shared() {
        let mut t = table();
        t.complete = false;
        assert!(!private_group_in(&t, 1000, 1000));
    }

    #[test]
    fn a_group_other_than_the_owners_primary_or_unknown_is_shared() {
        let t = table();
        assert!(!private_group_in(&t, 1000, 50), "a supplementary group");
        assert!(!private_group_in(&t, 1000, 1001), "bob's group");
        assert!(!private_group_in(&t, 4242, 4242), "unknown owner");
        let mut t = table();
        t.groups.remove(0);
        assert!(!private_group_in(&t, 1000, 1000), "group not found");
    }

    #[test]
    fn only_local_passwd_sources_list_every_account() {
        if cfg!(target_env = "musl") {
            eprintln!("skipped: musl has no NSS (lists_every_account is always true)");
            return;
        }
        let yes = |t: &str| lists_every_account(Some(t));
        assert!(yes("passwd: files\ngroup: files\n"));
        assert!(yes("# comment\npasswd:         files systemd\n"));
        assert!(yes("passwd: files [NOTFOUND=return] systemd # local\n"));
        assert!(!yes("passwd: files sss\n"), "SSSD need not enumerate");
        assert!(!yes("passwd: files ldap\n"));
        assert!(!yes("passwd: compat\n"), "compat may pull in NIS");
        assert!(!yes("group: files\n"), "no passwd line");
        assert!(!yes("passwd:\n"), "no source");
        assert!(!lists_every_account(None), "no nsswitch.conf");
    }

    #[test]
    fn nss_knows_root_and_an_unknown_group_is_shared() {
        assert_eq!(Nss.user(0), Some(("root".into(), 0)));
        assert_eq!(user_name(0), "root");
        assert_eq!(group_name(0), "root");
        let everyone = Nss.everyone();
        let conf = std::fs::read_to_string("/etc/nsswitch.conf").ok();
        assert_eq!(everyone.is_some(), lists_every_account(conf.as_deref()));
        if let Some(all) = everyone {
            assert!(all.iter().any(|(n, g)| n == "root" && *g == 0), "{all:?}");
        }
        assert!(!private_group(0, 4_000_000), "no such group");
        assert!(Nss.members(0).is_some(), "root's group, members or none");
        assert_eq!(Nss.members(4_000_000), None);
        assert_eq!(group_name(4_000_000), "gid 4000000");
    }
}
