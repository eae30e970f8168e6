//! Checking, at compile time, that a `distributed` function's key and value
//! can travel to Redis (`serde`), with one error naming the type otherwise.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::redis::Wire;

/// Picks the [`Wire`] of the key's type by autoref, from a reference to
/// the key (its type is not written anywhere): [`KeyTravels`] when it is
/// `Serialize + DeserializeOwned`, else [`KeyCannotTravel`] (one error).
pub struct KeyWireProbe<K>(std::marker::PhantomData<fn() -> K>);

impl<K> KeyWireProbe<K> {
    /// The probe of `key`'s type.
    pub fn of(_key: &K) -> Self {
        KeyWireProbe(std::marker::PhantomData)
    }
}

/// [`KeyWireProbe`] of a key that can travel.
pub trait KeyTravels<K> {
    /// Its wire.
    fn wire(&self) -> Wire<K>;
}

impl<K: Serialize + DeserializeOwned> KeyTravels<K> for &&KeyWireProbe<K> {
    fn wire(&self) -> Wire<K> {
        Wire::postcard()
    }
}

/// A `distributed` function's key must be `serde::Serialize +
/// DeserializeOwned` (it travels to Redis as a digest, and on the bus).
/// Implemented by nothing: a key that cannot travel is one error naming it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the key of a `distributed` function: it needs `serde::Serialize` and `serde::de::DeserializeOwned`",
    label = "the key of this distributed function",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`, or key on the arguments that have them"
)]
pub trait DistributedKey {}

/// [`KeyWireProbe`] of a key that cannot travel: one error.
pub trait KeyCannotTravel<K> {
    /// Never callable.
    fn wire(&self) -> Wire<K>
    where
        K: DistributedKey,
    {
        unreachable!("nothing implements DistributedKey")
    }
}

impl<K> KeyCannotTravel<K> for &KeyWireProbe<K> {}

/// Picks the [`Wire`] of `V` by autoref: [`ValueTravels`] when `V` is
/// `Serialize + DeserializeOwned`, else [`ValueCannotTravel`], whose
/// method asks for a trait nothing implements (one error, naming both).
pub struct ValueWireProbe<V>(std::marker::PhantomData<fn() -> V>);

impl<V> ValueWireProbe<V> {
    /// The probe of `V`.
    pub fn new() -> Self {
        ValueWireProbe(std::marker::PhantomData)
    }
}

impl<V> Default for ValueWireProbe<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// [`ValueWireProbe`] of a value that can travel.
pub trait ValueTravels<V> {
    /// Its wire.
    fn wire(&self) -> Wire<V>;
}

impl<V: Serialize + DeserializeOwned> ValueTravels<V> for &&ValueWireProbe<V> {
    fn wire(&self) -> Wire<V> {
        Wire::postcard()
    }
}

/// A `distributed` function's value must be `serde::Serialize +
/// DeserializeOwned` (it travels to Redis). Implemented by nothing: a value
/// that cannot travel is one error naming it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the value of a `distributed` function: it needs `serde::Serialize` and `serde::de::DeserializeOwned`",
    label = "the value of this distributed function",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`"
)]
pub trait DistributedValue {}

/// [`ValueWireProbe`] of a value that cannot travel: one error.
pub trait ValueCannotTravel<V> {
    /// Never callable.
    fn wire(&self) -> Wire<V>
    where
        V: DistributedValue,
    {
        unreachable!("nothing implements DistributedValue")
    }
}

impl<V> ValueCannotTravel<V> for &ValueWireProbe<V> {}
