//! Shared copies of the short strings that repeat across thousands of
//! processes and threads (group names, thread names, wait channels), so
//! that what is remembered between cycles holds a pointer to one copy
//! instead of a string each.

use std::collections::HashSet;
use std::sync::Arc;

/// A set of shared strings.
#[derive(Debug, Default)]
pub(crate) struct Names {
    set: HashSet<Arc<str>>,
}

impl Names {
    /// The shared copy of `s`.
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
        match self.set.get(s) {
            Some(a) => Arc::clone(a),
            None => {
                let a: Arc<str> = Arc::from(s);
                self.set.insert(Arc::clone(&a));
                a
            }
        }
    }

    /// `s` itself when it already holds the text `text`, else the shared
    /// copy of `text`.
    pub(crate) fn update(&mut self, s: &mut Arc<str>, text: &str) {
        if **s != *text {
            *s = self.get(text);
        }
    }

    /// Forgets the strings nothing uses any more.
    pub(crate) fn sweep(&mut self) {
        self.set.retain(|a| Arc::strong_count(a) > 1);
    }

    /// How many strings are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_copy_per_text_until_unused() {
        let mut names = Names::default();
        let a = names.get("worker");
        let b = names.get("worker");
        assert!(Arc::ptr_eq(&a, &b));
        let mut c = names.get("main");
        names.update(&mut c, "main");
        assert_eq!(names.len(), 2);
        names.update(&mut c, "worker");
        assert!(Arc::ptr_eq(&a, &c));
        names.sweep();
        assert_eq!(names.len(), 1);
        drop((a, b, c));
        names.sweep();
        assert_eq!(names.len(), 0);
    }
}
