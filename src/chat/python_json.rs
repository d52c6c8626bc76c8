//! JSON text exactly as Python's `json.dumps(x, ensure_ascii=False)` writes it, which is what
//! the transformers `tojson` template filter produces: `", "` and `": "` separators, non-ASCII
//! kept as is, control characters escaped, floats in Python `repr` form (`1.0`, `1e+16`).

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// Serializes `value` the way `json.dumps(value, ensure_ascii=False)` would.
pub fn dumps<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut serializer)?;
    // serde_json only ever writes valid UTF-8.
    String::from_utf8(out).map_err(serde::ser::Error::custom)
}

/// serde_json's compact formatter with Python's separators and float spelling. String escaping
/// is already Python's: `\"`, `\\`, `\b \f \n \r \t` and `\u00XX` (lowercase) for other controls.
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(python_float_repr(value).as_bytes())
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, positional notation when the decimal
/// exponent is in -4..16, otherwise scientific with a signed, at least two-digit exponent.
/// Only finite values arrive here: serde_json writes NaN and infinities as `null`.
fn python_float_repr(value: f64) -> String {
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.25e-7", "1e16", "0e0".
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if value.is_sign_negative() { "-" } else { "" };
    let body = if (-4..16).contains(&exponent) {
        positional(&digits, exponent)
    } else {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!("{first}{fraction}e{exponent_sign}{:02}", exponent.abs())
    };
    format!("{sign}{body}")
}

/// `digits` (d.ddd × 10^exponent) in positional notation, always with a fractional part.
fn positional(digits: &str, exponent: i32) -> String {
    if exponent < 0 {
        let zeros = "0".repeat((-exponent - 1) as usize);
        return format!("0.{zeros}{digits}");
    }
    let integer_len = exponent as usize + 1;
    if digits.len() > integer_len {
        let (integer, fraction) = digits.split_at(integer_len);
        format!("{integer}.{fraction}")
    } else {
        format!("{digits}{}.0", "0".repeat(integer_len - digits.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_escapes_match_python() {
        let value = serde_json::json!({
            "name": "get_weather",
            "tags": ["a", "b", []],
            "empty": {},
            "text": "naïve \"quoted\" \\ tab\t nl\n bell\u{7} del\u{7f} 東京 🎉",
            "n": null, "t": true, "i": -12, "big": 18446744073709551615u64
        });
        // json.dumps(..., ensure_ascii=False) on the same dict: keys in insertion order, as
        // Python's dicts keep them (serde_json's `preserve_order`, which llguidance enables).
        assert_eq!(
            dumps(&value).unwrap(),
            "{\"name\": \"get_weather\", \"tags\": [\"a\", \"b\", []], \"empty\": {}, \
             \"text\": \"naïve \\\"quoted\\\" \\\\ tab\\t nl\\n bell\\u0007 del\u{7f} 東京 🎉\", \
             \"n\": null, \"t\": true, \"i\": -12, \"big\": 18446744073709551615}"
        );
    }

    #[test]
    fn floats_are_spelled_like_python_repr() {
        for (value, python) in [
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.5, "0.5"),
            (123.456, "123.456"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1234567.0, "1234567.0"),
        ] {
            assert_eq!(python_float_repr(value), python, "{value:e}");
        }
    }
}
