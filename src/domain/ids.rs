//! Typed identifiers: a merchant, an invoice number, and the two together. Each has one
//! validating constructor, so a value of these types is always one 2C2P accepts.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why an identifier was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("merchantID must be 1 to 25 characters")]
    BadMerchant,
    #[error("invoiceNo must be 1 to 50 printable characters")]
    BadInvoice,
}

/// A 2C2P merchant ID: 1 to 25 bytes (as configured).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MerchantId(String);

impl MerchantId {
    /// The merchant ID `id`, if it is one.
    pub fn parse(id: &str) -> Result<MerchantId, IdError> {
        if id.is_empty() || id.len() > 25 {
            return Err(IdError::BadMerchant);
        }
        Ok(MerchantId(id.to_string()))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An invoice number as 2C2P accepts it: 1 to 50 printable ASCII characters (no space).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct InvoiceNo(String);

impl InvoiceNo {
    /// The invoice number `no`, if it is one.
    pub fn parse(no: &str) -> Result<InvoiceNo, IdError> {
        if no.is_empty() || no.len() > 50 || !no.chars().all(|c| c.is_ascii_graphic()) {
            return Err(IdError::BadInvoice);
        }
        Ok(InvoiceNo(no.to_string()))
    }

    /// Whether it uses only letters, digits, `-` and `_` (what pgw-relay asks of the invoice
    /// numbers it creates tokens for).
    pub fn is_plain(&self) -> bool {
        self.0.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One invoice of one merchant: how the store and the reconciler name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvoiceKey {
    pub merchant_id: MerchantId,
    pub invoice_no: InvoiceNo,
}

impl InvoiceKey {
    /// The invoice `invoice_no` of merchant `merchant_id`, if both are valid.
    pub fn parse(merchant_id: &str, invoice_no: &str) -> Result<InvoiceKey, IdError> {
        Ok(InvoiceKey { merchant_id: MerchantId::parse(merchant_id)?, invoice_no: InvoiceNo::parse(invoice_no)? })
    }
}

macro_rules! text_id {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
        impl PartialEq<String> for $t {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
        impl From<$t> for String {
            fn from(id: $t) -> String {
                id.0
            }
        }
    };
}
text_id!(MerchantId);
text_id!(InvoiceNo);

impl<'de> Deserialize<'de> for MerchantId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MerchantId::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for InvoiceNo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        InvoiceNo::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for InvoiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.merchant_id, self.invoice_no)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoice_numbers_are_what_2c2p_accepts() {
        assert!(InvoiceNo::parse("INV-1001").is_ok());
        assert!(InvoiceNo::parse(&"9".repeat(50)).is_ok());
        for bad in ["", "has space", "tab\t", "é", &"9".repeat(51)] {
            assert_eq!(InvoiceNo::parse(bad), Err(IdError::BadInvoice), "{bad:?}");
        }
        assert!(InvoiceNo::parse("A_1-b").unwrap().is_plain());
        assert!(!InvoiceNo::parse("A.1").unwrap().is_plain());
    }

    #[test]
    fn merchant_ids_and_keys() {
        assert!(MerchantId::parse("JT01").is_ok());
        assert_eq!(MerchantId::parse(""), Err(IdError::BadMerchant));
        assert_eq!(MerchantId::parse(&"M".repeat(26)), Err(IdError::BadMerchant));
        let key = InvoiceKey::parse("JT01", "INV1").unwrap();
        assert_eq!(key.to_string(), "JT01/INV1");
        assert_eq!(serde_json::to_string(&key.invoice_no).unwrap(), "\"INV1\"");
        assert!(serde_json::from_str::<InvoiceNo>("\"a b\"").is_err());
    }
}
