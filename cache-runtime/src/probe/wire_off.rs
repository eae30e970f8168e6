//! Without the `redis` feature: the wire probes generated code names, which
//! never fail (the feature's own error is the one reported).

use std::marker::PhantomData;

use crate::redis::Wire;

/// Stands in for the probe of a key's wire.
pub struct KeyWireProbe<K>(PhantomData<fn() -> K>);

impl<K> KeyWireProbe<K> {
    /// The probe of `key`'s type.
    pub fn of(_key: &K) -> Self {
        KeyWireProbe(PhantomData)
    }
}

/// Without the feature every key "travels": the feature's error is the one
/// reported.
pub trait KeyTravels<K> {
    /// A wire that is never used.
    fn wire(&self) -> Wire<K> {
        Wire(PhantomData)
    }
}

impl<K> KeyTravels<K> for &&KeyWireProbe<K> {}

/// Unused without the feature; named by generated code.
pub trait KeyCannotTravel<K> {}

/// Stands in for the probe of a value's wire.
pub struct ValueWireProbe<V>(PhantomData<fn() -> V>);

impl<V> ValueWireProbe<V> {
    /// The probe of `V`.
    pub fn new() -> Self {
        ValueWireProbe(PhantomData)
    }
}

impl<V> Default for ValueWireProbe<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Without the feature every value "travels".
pub trait ValueTravels<V> {
    /// A wire that is never used.
    fn wire(&self) -> Wire<V> {
        Wire(PhantomData)
    }
}

impl<V> ValueTravels<V> for &&ValueWireProbe<V> {}

/// Unused without the feature; named by generated code.
pub trait ValueCannotTravel<V> {}
