//! Compile-time probes: each turns a type that cannot do what a `#[cached]`
//! or `#[invalidate]` function needs into one error at the user's token,
//! naming the way out.
//!
//! They work by autoref specialisation. The generated code calls a method on
//! `&&&Probe::<T>::new()`. Method resolution tries the receiver with the
//! most references first, so the first trait whose impl fits wins: the
//! "can" impl when `T` has the bounds, else a fallback whose method is
//! bounded by a trait nothing implements. That trait carries a
//! `#[diagnostic::on_unimplemented]` message, so the error names the problem
//! in the user's terms, once. The fallback's results satisfy every later
//! bound, so no second error follows.
//!
//! None of this is API: generated code reaches it through `__private`.

mod copy;
mod key;
mod returns;
mod share;
mod timeout;
mod value;
// `wire.rs` or `wire_off.rs` (the shared tier's) is declared at the
// crate's root, which picks it with the feature, as it picks the tier.

pub use crate::wire_probe::{
    KeyCannotTravel, KeyTravels, KeyWireProbe, ValueCannotTravel, ValueTravels, ValueWireProbe,
};
pub use copy::{BackgroundCopy, CanCopy, CannotCopy, CopyProbe};
pub use key::{
    CacheKeyPart, CopiedReceiver, InvalidKeyPart, KeyProbe, LentReceiver, NotAKey, ReceiverProbe,
    ValidKeyPart,
};
pub use returns::{
    NamedResultOrOption, PlainIsPlain, PlainIsResultOrOption, PlainProbe, WriteIsPlain,
    WriteIsResultOrOption, WriteProbe,
};
pub use share::{
    ShareByClone, ShareByMessage, ShareBySharedError, ShareNotPossible, ShareProbe, ShareableError,
};
pub use timeout::{
    BreakerError, TimeoutConverts, TimeoutDoesNotConvert, TimeoutError, TimeoutProbe,
};
pub use value::{
    CacheableValue, CachedValue, Direct, NotAValue, NotCacheableValue, NotSharedValue, Refused,
    SharedValue, Through, ValueProbe,
};
