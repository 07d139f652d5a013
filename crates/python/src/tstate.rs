//! One Python thread state per OS thread, kept from one run to the next.
//!
//! `Python::attach` on a thread that has no thread state creates one and
//! deletes it when it returns. A run on a pool thread did that every
//! time: a thread state made and freed, and with it the mmap'd first chunk
//! of its frame stack, unmapped at the end of the run (which interrupts the
//! other core to flush its TLB): about a tenth of a worker's CPU with 200
//! scripts a second. [`keep`] makes the thread state once per thread; every
//! later attach on that thread finds it, and it is deleted when the thread
//! ends.

use std::cell::RefCell;

use pyo3::ffi;

/// A thread state this thread created, deleted when the thread ends.
struct Kept(*mut ffi::PyThreadState);

impl Drop for Kept {
    fn drop(&mut self) {
        if self.0.is_null() {
            return;
        }
        // SAFETY: the thread state `keep` created on this thread, no longer
        // current (every attach on this thread has returned); the GIL is
        // taken to delete it, and released by the deletion.
        unsafe {
            ffi::PyEval_RestoreThread(self.0);
            ffi::PyThreadState_Clear(self.0);
            ffi::PyThreadState_DeleteCurrent();
        }
    }
}

thread_local! {
    static KEPT: RefCell<Option<Kept>> = const { RefCell::new(None) };
}

/// Give this thread a thread state that outlives the next attach. Call
/// while not attached, once the interpreter is initialized (a no-op
/// before, and on a thread that already has one).
pub(crate) fn keep() {
    let _ = KEPT.try_with(|k| {
        let Ok(mut k) = k.try_borrow_mut() else {
            return;
        };
        if k.is_some() {
            return;
        }
        // SAFETY: plain queries; then, on a thread with no thread state and
        // not attached, `PyGILState_Ensure` creates one and takes the GIL,
        // and `PyEval_SaveThread` releases the GIL keeping the state (its
        // gilstate counter stays 1, so `PyGILState_Release` of later
        // attaches never deletes it).
        unsafe {
            if ffi::Py_IsInitialized() == 0 {
                return;
            }
            if !ffi::PyGILState_GetThisThreadState().is_null() {
                *k = Some(Kept(std::ptr::null_mut()));
                return;
            }
            let _ = ffi::PyGILState_Ensure();
            *k = Some(Kept(ffi::PyEval_SaveThread()));
        }
    });
}
