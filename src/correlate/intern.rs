//! Interning of the few distinct names (orgs, workers, versions, reasons) so a session record
//! holds a `u32` instead of a string.

use rustc_hash::FxHashMap;

/// Id 0 is "absent"; names get ids from 1.
#[derive(Debug, Default)]
pub struct Interner {
    ids: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    pub fn intern(&mut self, name: Option<&str>) -> u32 {
        let Some(name) = name else { return 0 };
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        self.names.push(name.into());
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.ids.insert(name.into(), id);
        id
    }

    pub fn name(&self, id: u32) -> Option<&str> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        self.names.get(i).map(|s| &**s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_and_looks_up() {
        let mut i = Interner::default();
        assert_eq!(i.intern(None), 0);
        let a = i.intern(Some("org_a"));
        assert_eq!(i.intern(Some("org_b")), a + 1);
        assert_eq!(i.intern(Some("org_a")), a);
        assert_eq!(i.name(a), Some("org_a"));
        assert_eq!(i.name(0), None);
        assert_eq!(i.name(99), None);
    }
}
