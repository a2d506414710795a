//! The federation's vocabulary: identifiers in X-Road's grammar and the types that cross
//! process boundaries. Only this crate derives `Serialize`/`Deserialize` for wire types.

mod id;

pub use id::{ClientId, GlobalGroupId, IdError, MemberId, ServerId, ServiceId, SubsystemId};

pub mod conf;
pub mod gateway;
pub mod registry;
