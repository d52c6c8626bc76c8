//! Per-thread scratch buffers that outlive one kernel call. Large products need
//! megabytes of temporary space; allocating it per call maps fresh pages that the
//! kernel must zero on first touch, which costs as much as the product itself.
use std::cell::RefCell;

thread_local! {
    static F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    static U16: RefCell<Vec<Vec<u16>>> = const { RefCell::new(Vec::new()) };
    static U32: RefCell<Vec<Vec<u32>>> = const { RefCell::new(Vec::new()) };
}

/// Element types with a per-thread pool of reusable buffers.
pub trait Pooled: Copy + Default + 'static {
    fn pool() -> &'static std::thread::LocalKey<RefCell<Vec<Vec<Self>>>>;
}

impl Pooled for f32 {
    fn pool() -> &'static std::thread::LocalKey<RefCell<Vec<Vec<Self>>>> {
        &F32
    }
}
impl Pooled for u16 {
    fn pool() -> &'static std::thread::LocalKey<RefCell<Vec<Vec<Self>>>> {
        &U16
    }
}
impl Pooled for u32 {
    fn pool() -> &'static std::thread::LocalKey<RefCell<Vec<Vec<Self>>>> {
        &U32
    }
}

/// A buffer of `len` elements from this thread's pool, returned to it on drop. Its
/// contents are whatever the last user left: callers write before they read.
pub struct Scratch<T: Pooled> {
    buffer: Vec<T>,
    len: usize,
}

impl<T: Pooled> Scratch<T> {
    pub fn new(len: usize) -> Self {
        let mut buffer = T::pool()
            .with(|pool| pool.borrow_mut().pop())
            .unwrap_or_default();
        if buffer.len() < len {
            buffer.resize(len, T::default());
        }
        Scratch { buffer, len }
    }
}

impl<T: Pooled> std::ops::Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buffer[..self.len]
    }
}

impl<T: Pooled> std::ops::DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buffer[..self.len]
    }
}

impl<T: Pooled> Drop for Scratch<T> {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        // A thread that is exiting has no pool left; the buffer is then just freed.
        let _ = T::pool().try_with(|pool| pool.borrow_mut().push(buffer));
    }
}
