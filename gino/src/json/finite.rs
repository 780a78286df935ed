//! Whether a value has a float JSON cannot hold (NaN, ±infinity):
//! `serde_json` writes those as `null` without a word, which would store a
//! property that no longer reads back as what was written.

use std::fmt;

use serde::ser::{self, Serialize};

/// The first non-finite float in `value`, if any.
pub(super) fn first_non_finite<T: Serialize + ?Sized>(value: &T) -> Option<f64> {
    match value.serialize(Check) {
        Err(Found::NonFinite(float)) => Some(float),
        Ok(()) | Err(Found::Other) => None,
    }
}

/// A serializer that writes nothing and stops at the first non-finite
/// float; everything else is walked and accepted.
struct Check;

/// Why [`Check`] stopped.
#[derive(Debug)]
enum Found {
    NonFinite(f64),
    /// A `Serialize` impl's own error, which the real serialization
    /// reports with its message.
    Other,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::NonFinite(float) => write!(f, "{float} is not a JSON number"),
            Found::Other => f.write_str("not serializable"),
        }
    }
}

impl std::error::Error for Found {}

impl ser::Error for Found {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Found::Other
    }
}

fn float(v: f64) -> Result<(), Found> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Found::NonFinite(v))
    }
}

/// Methods that take their arguments, look at nothing and return `$value`.
macro_rules! ignore {
    ($ret:ty = $value:expr; $($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ret, Found> {
            Ok($value)
        })*
    };
}

impl ser::Serializer for Check {
    type Ok = ();
    type Error = Found;
    type SerializeSeq = Check;
    type SerializeTuple = Check;
    type SerializeTupleStruct = Check;
    type SerializeTupleVariant = Check;
    type SerializeMap = Check;
    type SerializeStruct = Check;
    type SerializeStructVariant = Check;

    ignore!(() = ();
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    // Compounds: each element comes through the impls below.
    ignore!(Check = Check;
        serialize_seq(Option<usize>),
        serialize_tuple(usize),
        serialize_tuple_struct(&'static str, usize),
        serialize_tuple_variant(&'static str, u32, &'static str, usize),
        serialize_map(Option<usize>),
        serialize_struct(&'static str, usize),
        serialize_struct_variant(&'static str, u32, &'static str, usize),
    );

    fn serialize_f32(self, v: f32) -> Result<(), Found> {
        float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Found> {
        float(v)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Found> {
        v.serialize(Check)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Found> {
        v.serialize(Check)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Result<(), Found> {
        v.serialize(Check)
    }
}

/// The compound serializers: every element, key and field is checked the
/// same way.
macro_rules! compound {
    ($($trait:ident :: $method:ident $(($key:ty))?),* $(,)?) => {
        $(impl ser::$trait for Check {
            type Ok = ();
            type Error = Found;
            fn $method<T: Serialize + ?Sized>(&mut self, $(_: $key,)? v: &T) -> Result<(), Found> {
                v.serialize(Check)
            }
            fn end(self) -> Result<(), Found> {
                Ok(())
            }
        })*
    };
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
    SerializeStruct::serialize_field(&'static str),
    SerializeStructVariant::serialize_field(&'static str),
);

impl ser::SerializeMap for Check {
    type Ok = ();
    type Error = Found;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Found> {
        k.serialize(Check)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Found> {
        v.serialize(Check)
    }
    fn end(self) -> Result<(), Found> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::first_non_finite;
    use std::collections::BTreeMap;

    #[test]
    fn finds_non_finite_floats_wherever_they_are() {
        assert_eq!(first_non_finite(&1.5_f64), None);
        assert_eq!(first_non_finite(&f64::INFINITY), Some(f64::INFINITY));
        assert!(first_non_finite(&f32::NAN).is_some_and(f64::is_nan));
        assert!(first_non_finite(&Some(vec![1.0, f64::NAN])).is_some());
        let map = BTreeMap::from([("a", (1, f64::NEG_INFINITY))]);
        assert_eq!(first_non_finite(&map), Some(f64::NEG_INFINITY));
        assert_eq!(first_non_finite(&(None::<f64>, "x", [1_u8, 2])), None);
    }
}
