//! The only users of nftnl/mnl: reading managed sets and sending element batches over one
//! long-lived `NETLINK_NETFILTER` socket.

mod elems;
mod expr;
mod socket;
mod table;

pub use socket::Nft;
pub use table::{build_owned_table, delete_owned_table, OWNED_TABLE_MARK};

use crate::elements::Family;
use std::fmt;

#[derive(Debug)]
pub enum NftError {
    /// Opening or configuring the netlink socket failed.
    Socket { step: &'static str, error: std::io::Error },
    /// The table or the set does not exist.
    Missing { set: String },
    /// The set exists but its key is not what the config needs.
    WrongType { set: String, expected: &'static str, found: String },
    /// The kernel refused a request or a batch; the batch was rolled back whole.
    Rejected { set: Option<String>, op: &'static str, errno: i32, message: Option<String> },
    /// The kernel refused elements because the set reached its declared `size`.
    Full { set: String, size: Option<u32> },
    /// No complete answer came back (timeout, `ENOBUFS`, truncated reply): outcome unknown.
    NoAnswer { step: &'static str, detail: String },
}

impl fmt::Display for NftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NftError::Socket { step, error } => write!(f, "nftables socket: {step}: {error}"),
            NftError::Missing { set } => write!(f, "set {set} does not exist"),
            NftError::WrongType { set, expected, found } => {
                write!(f, "set {set} is {found}, expected `{expected}`")
            }
            NftError::Rejected { set, op, errno, message } => {
                let err = std::io::Error::from_raw_os_error(*errno);
                match set {
                    Some(s) => write!(f, "{op} ({s}): {err}")?,
                    None => write!(f, "{op}: {err}")?,
                }
                if let Some(m) = message {
                    write!(f, " ({m})")?;
                }
                Ok(())
            }
            NftError::Full { set, size: Some(n) } => write!(f, "set {set} is full (size {n})"),
            NftError::Full { set, size: None } => write!(f, "set {set} is full (its declared size)"),
            NftError::NoAnswer { step, detail } => {
                write!(f, "{step}: no complete answer from the kernel: {detail}")
            }
        }
    }
}

impl std::error::Error for NftError {}

/// nf_tables family numbers (`NFPROTO_*`).
fn family_number(f: Family) -> u16 {
    u16::from(f.number())
}
