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
#[cfg(feature = "redis")]
mod wire;
#[cfg(not(feature = "redis"))]
#[path = "wire_off.rs"]
mod wire;

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
pub use timeout::{TimeoutConverts, TimeoutDoesNotConvert, TimeoutError, TimeoutProbe};
pub use value::{
    CacheableValue, CachedValue, Direct, NotAValue, NotCacheableValue, NotSharedValue, Refused,
    SharedValue, Through, ValueProbe,
};
#[cfg(feature = "redis")]
pub use wire::{DistributedKey, DistributedValue};
pub use wire::{
    KeyCannotTravel, KeyTravels, KeyWireProbe, ValueCannotTravel, ValueTravels, ValueWireProbe,
};
