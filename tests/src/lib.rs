//! Reference model of the jobstate table, written with std collections, and helpers for
//! scenario tests. The model is the plain, obviously-correct version the property tests
//! compare the real table against.
