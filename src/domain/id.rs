//! Record ids: opaque strings in the API. Ours are UUIDs (v7), kept as 16 bytes;
//! ids imported from the predecessor (MongoDB ObjectIds, or anything else) are
//! kept as the exact text they came with. Either way `to_string` gives back the
//! very string that was parsed.
//!
//! Encoding: JSON and every human-readable format see the string. bincode sees
//! bytes: exactly 16 for a UUID (the same bytes `uuid::Uuid` writes, so logs
//! written before this type existed read unchanged), the UTF-8 text otherwise —
//! with a 0xFF byte appended when the text is itself 16 bytes long (0xFF never
//! occurs in UTF-8, so the two cannot be confused).

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use uuid::Uuid;

/// Longest id accepted from outside.
pub(crate) const MAX_ID_BYTES: usize = 256;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Id {
    Uuid([u8; 16]),
    Text(Arc<str>),
}

impl Id {
    /// A new time-ordered id for a record created here.
    pub fn generate() -> Id {
        Id::Uuid(*Uuid::now_v7().as_bytes())
    }

    /// Any non-empty string of at most [`MAX_ID_BYTES`] without control
    /// characters. A canonical (lowercase, hyphenated) UUID is stored compactly.
    pub(crate) fn parse(s: &str) -> Option<Id> {
        if s.is_empty() || s.len() > MAX_ID_BYTES || s.chars().any(char::is_control) {
            return None;
        }
        if s.len() == 36 {
            if let Ok(u) = Uuid::try_parse(s) {
                if u.hyphenated().to_string() == s {
                    return Some(Id::Uuid(*u.as_bytes()));
                }
            }
        }
        Some(Id::Text(Arc::from(s)))
    }

    fn from_stored(b: &[u8]) -> Result<Id, String> {
        if let Ok(raw) = <[u8; 16]>::try_from(b) {
            return Ok(Id::Uuid(raw));
        }
        let text = match b {
            [head @ .., 0xff] if head.len() == 16 => head,
            other => other,
        };
        let s = std::str::from_utf8(text).map_err(|_| "id is not UTF-8".to_string())?;
        Id::parse(s).ok_or_else(|| format!("invalid id {s:?}"))
    }
}

impl From<Uuid> for Id {
    fn from(u: Uuid) -> Id {
        Id::Uuid(*u.as_bytes())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Uuid(b) => fmt::Display::fmt(&Uuid::from_bytes(*b).hyphenated(), f),
            Id::Text(s) => f.write_str(s),
        }
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({self})")
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return s.collect_str(self);
        }
        match self {
            Id::Uuid(b) => s.serialize_bytes(b),
            Id::Text(t) if t.len() == 16 => {
                let mut b = Vec::with_capacity(17);
                b.extend_from_slice(t.as_bytes());
                b.push(0xff);
                s.serialize_bytes(&b)
            }
            Id::Text(t) => s.serialize_bytes(t.as_bytes()),
        }
    }
}

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = Id;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
        Id::parse(v).ok_or_else(|| E::custom(format!("invalid id {v:?}")))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Id, E> {
        Id::from_stored(v).map_err(E::custom)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Id, A::Error> {
        let mut b = Vec::new();
        while let Some(x) = seq.next_element::<u8>()? {
            if b.len() > MAX_ID_BYTES + 1 {
                return Err(de::Error::custom("id too long"));
            }
            b.push(x);
        }
        Id::from_stored(&b).map_err(de::Error::custom)
    }
}

impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(IdVisitor)
        } else {
            d.deserialize_bytes(IdVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) {
        let id = Id::parse(s).unwrap();
        assert_eq!(id.to_string(), s);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, serde_json::to_string(s).unwrap());
        assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
        let bin = bincode::serialize(&id).unwrap();
        assert_eq!(bincode::deserialize::<Id>(&bin).unwrap(), id);
    }

    #[test]
    fn any_string_id_round_trips_exactly() {
        round_trip("0190b8a2-5c3e-7d4f-8a1b-2c3d4e5f6a7b");
        round_trip("0190B8A2-5C3E-7D4F-8A1B-2C3D4E5F6A7B"); // not canonical: kept as text
        round_trip("507f1f77bcf86cd799439011"); // a MongoDB ObjectId
        round_trip("exactly16bytes!!");
        round_trip("ünïcødé");
        assert!(matches!(
            Id::parse("0190b8a2-5c3e-7d4f-8a1b-2c3d4e5f6a7b"),
            Some(Id::Uuid(_))
        ));
        assert!(matches!(Id::parse("exactly16bytes!!"), Some(Id::Text(_))));
    }

    #[test]
    fn bad_ids_are_refused() {
        assert!(Id::parse("").is_none());
        assert!(Id::parse("a\nb").is_none());
        assert!(Id::parse(&"x".repeat(MAX_ID_BYTES + 1)).is_none());
    }

    #[test]
    fn reads_what_uuid_wrote() {
        let u = Uuid::now_v7();
        let old = bincode::serialize(&u).unwrap();
        assert_eq!(bincode::deserialize::<Id>(&old).unwrap(), Id::from(u));
        assert_eq!(bincode::serialize(&Id::from(u)).unwrap(), old);
    }
}
